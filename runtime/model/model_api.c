/* The public face of the model layer (qkern.h, "model files"): the presets, qk_model_quantize
 * and qk_model_plan over the streaming quantizer (model_quantize.c) and the planner (plan.c),
 * and the result handle they return. Argument checks live here; the work does not. */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "model_quantize.h"
#include "shard.h"

struct qk_model_result {
    qk_model_quantize_result r;
    qk_model_totals totals;
};

/* ---- presets ------------------------------------------------------------------------------ */

size_t qk_preset_count(void) {
    size_t n;
    qk_ftypes(&n);
    return n;
}

const qk_preset *qk_preset_at(size_t i) {
    size_t n;
    const qk_ftype *all = qk_ftypes(&n);
    return i < n ? &all[i] : NULL;
}

qk_status qk_preset_from_name(const char *name, const qk_preset **out) {
    if (!out) return qk_fail(NULL, QK_ERR_INVALID_ARG, "qk_preset_from_name: out is NULL");
    *out = qk_ftype_from_name(name);
    if (!*out) return qk_fail(NULL, QK_ERR_INVALID_ARG, "unknown preset '%s'", name ? name : "(null)");
    return QK_OK;
}

qk_status qk_preset_from_id(int id, const qk_preset **out) {
    if (!out) return qk_fail(NULL, QK_ERR_INVALID_ARG, "qk_preset_from_id: out is NULL");
    *out = qk_ftype_from_id(id);
    if (!*out) return qk_fail(NULL, QK_ERR_INVALID_ARG, "no preset has llama_ftype id %d", id);
    return QK_OK;
}

/* The preset a desc names: a name, else a llama_ftype id in decimal (as llama-quantize takes
 * its TYPE argument). */
static qk_status find_preset(qk_context *ctx, const char *s, const qk_ftype **out) {
    if (!s || !*s) return qk_fail(ctx, QK_ERR_INVALID_ARG, "no preset given (desc.preset)");
    *out = qk_ftype_from_name(s);
    if (*out) return QK_OK;
    char *end;
    errno = 0;
    long id = strtol(s, &end, 10);
    if (end != s && !*end && !errno && id >= INT_MIN && id <= INT_MAX) *out = qk_ftype_from_id((int)id);
    if (*out) return QK_OK;
    return qk_fail(ctx, QK_ERR_INVALID_ARG, "unknown preset '%s' (qk_preset_at lists them)", s);
}

/* ---- descs -------------------------------------------------------------------------------- */

qk_model_quantize_desc qk_model_quantize_default_desc(void) {
    qk_model_quantize_desc d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.output_tensor_type = -1;
    d.token_embedding_type = -1;
    return d;
}

qk_model_plan_desc qk_model_plan_default_desc(void) {
    qk_model_plan_desc d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    return d;
}

/* The recipe fields of a desc as plan options; ctx receives the message (NULL: the thread's). */
static qk_status recipe_options(qk_context *ctx, const char *what, const qk_model_quantize_desc *d,
                                qk_plan_options *o) {
    if (!d) return qk_fail(ctx, QK_ERR_INVALID_ARG, "%s: desc is NULL", what);
    if (d->struct_size < sizeof *d)
        return qk_fail(ctx, QK_ERR_INVALID_ARG, "qk_model_quantize_desc.struct_size is %zu, expected %zu",
                       d->struct_size, sizeof *d);
    if (d->n_overrides && !d->overrides)
        return qk_fail(ctx, QK_ERR_INVALID_ARG, "%s: %zu overrides but no array", what, d->n_overrides);
    memset(o, 0, sizeof *o);
    qk_status st = find_preset(ctx, d->preset, &o->ftype);
    if (st != QK_OK) return st;
    o->pure = d->pure;
    o->leave_output_tensor = d->leave_output_tensor;
    o->allow_requantize = d->allow_requantize;
    o->output_tensor_type = d->output_tensor_type;
    o->token_embedding_type = d->token_embedding_type;
    o->overrides = d->overrides;
    o->n_overrides = d->n_overrides;
    return QK_OK;
}

/* The file and layout fields: what the CLI refuses as a usage error, refused here too. */
static qk_status check_files(qk_context *ctx, const qk_model_quantize_desc *d) {
    if (!d->input) return qk_fail(ctx, QK_ERR_INVALID_ARG, "qk_model_quantize: no input file (desc.input)");
    if (!d->output && !d->dry_run)
        return qk_fail(ctx, QK_ERR_INVALID_ARG, "qk_model_quantize: no output file (desc.output) and not a dry run");
    if ((d->n_include && !d->include_weights) || (d->n_exclude && !d->exclude_weights))
        return qk_fail(ctx, QK_ERR_INVALID_ARG, "qk_model_quantize: include/exclude counts without their arrays");
    if (d->n_include && d->n_exclude)
        return qk_fail(ctx, QK_ERR_INVALID_ARG,
                       "qk_model_quantize: include_weights and exclude_weights cannot be used together");
    if (d->keep_split && d->split_max_bytes)
        return qk_fail(ctx, QK_ERR_INVALID_ARG,
                       "qk_model_quantize: keep_split and split_max_bytes cannot be used together");
    if (d->shard_count < 0 || d->shard_count > QK_SHARD_MAX_PARTS ||
        (d->shard_count && (d->shard_index < 1 || d->shard_index > d->shard_count)) ||
        (!d->shard_count && d->shard_index))
        return qk_fail(ctx, QK_ERR_INVALID_ARG,
                       "qk_model_quantize: shard %d of %d: shard_index must be 1 to shard_count, shard_count 1 to %d",
                       d->shard_index, d->shard_count, QK_SHARD_MAX_PARTS);
    if (d->shard_count && (d->keep_split || d->split_max_bytes))
        return qk_fail(ctx, QK_ERR_INVALID_ARG,
                       "qk_model_quantize: shards make their own split; not with keep_split or split_max_bytes");
    if (d->shard_count && (d->target_bpw > 0 || d->target_bytes) && (!d->state_file || d->target_curve))
        return qk_fail(ctx, QK_ERR_INVALID_ARG,
                       "qk_model_quantize: a sharded size target needs a state_file and no target_curve: first each "
                       "shard's errors (dry_run, state_file per shard), then qk_model_state_merge, then each shard "
                       "with the merged state_file");
    if (d->target_bpw < 0 || !(d->target_bpw == d->target_bpw) || (d->target_bpw > 0 && d->target_bytes))
        return qk_fail(ctx, QK_ERR_INVALID_ARG,
                       "qk_model_quantize: target_bpw must be >= 0, and not with target_bytes");
    if (d->n_target_types && !d->target_types)
        return qk_fail(ctx, QK_ERR_INVALID_ARG, "qk_model_quantize: %zu target types but no array", d->n_target_types);
    if ((d->n_target_types || d->state_file || d->target_curve) && !(d->target_bpw > 0) && !d->target_bytes)
        return qk_fail(ctx, QK_ERR_INVALID_ARG,
                       "qk_model_quantize: target_types, state_file and target_curve need a size target");
    if (d->target_curve < 0 || d->target_curve == 1 || d->target_curve > 10000)
        return qk_fail(ctx, QK_ERR_INVALID_ARG, "qk_model_quantize: target_curve is %d (0, or 2 to 10000 budgets)",
                       d->target_curve);
    for (size_t i = 0; i < d->n_target_types; i++) {
        qk_type_info info;
        if (qk_type_get_info(d->target_types[i], &info) != QK_OK || info.block_elems == 1)
            return qk_fail(ctx, QK_ERR_INVALID_ARG, "qk_model_quantize: target type %d is not a quantized type",
                           d->target_types[i]);
    }
    if ((d->n_kv_overrides && !d->kv_overrides) || (d->n_prune_layers && !d->prune_layers))
        return qk_fail(ctx, QK_ERR_INVALID_ARG, "qk_model_quantize: kv override / prune counts without their arrays");
    for (size_t i = 0; i < d->n_kv_overrides; i++) {
        qk_status st = qk_model_check_kv_override(ctx, d->kv_overrides[i]);
        if (st != QK_OK) return st;
    }
    for (size_t i = 0; i < d->n_prune_layers; i++)
        if (d->prune_layers[i] < 0)
            return qk_fail(ctx, QK_ERR_INVALID_ARG, "qk_model_quantize: prune layer %d is negative",
                           d->prune_layers[i]);
    return QK_OK;
}

/* The extra devices: each a context of its own, not ctx, none NULL or given twice. Two contexts
 * on one device are allowed (the cpu standing in for several devices, in tests). */
static qk_status check_contexts(qk_context *ctx, const qk_model_quantize_desc *d) {
    if (d->n_extra_contexts && !d->extra_contexts)
        return qk_fail(ctx, QK_ERR_INVALID_ARG, "qk_model_quantize: %zu extra contexts but no array",
                       d->n_extra_contexts);
    for (size_t k = 0; k < d->n_extra_contexts; k++) {
        const qk_context *c = d->extra_contexts[k];
        if (!c) return qk_fail(ctx, QK_ERR_INVALID_ARG, "qk_model_quantize: extra context %zu is NULL", k);
        if (c == ctx)
            return qk_fail(ctx, QK_ERR_INVALID_ARG, "qk_model_quantize: extra context %zu is the context itself", k);
        for (size_t j = 0; j < k; j++)
            if (d->extra_contexts[j] == c)
                return qk_fail(ctx, QK_ERR_INVALID_ARG,
                               "qk_model_quantize: extra contexts %zu and %zu are the same context", j, k);
    }
    return QK_OK;
}

/* ---- results ------------------------------------------------------------------------------ */

static qk_model_result *result_new(void) { return calloc(1, sizeof(qk_model_result)); }

static void result_close(qk_model_result *r) {
    const qk_model_quantize_result *q = &r->r;
    r->totals = (qk_model_totals){q->n_tensors,         q->n_splits,          q->in_bytes,       q->out_bytes,
                                  q->in_weights,        q->quantized_weights, q->out_file_bytes, q->seconds,
                                  q->imatrix_entries,   q->in_tensors,        q->target_budget,  q->target_min_bytes,
                                  q->target_max_bytes,  q->target_error,      q->preset_error,   q->matrix_seconds,
                                  q->matrix_from_state, q->matrix_part,       q->matrix_known,   q->matrix_free};
}

size_t qk_model_result_count(const qk_model_result *r) { return r ? r->r.n_tensors : 0; }

const qk_model_tensor *qk_model_result_tensor(const qk_model_result *r, size_t i) {
    return r && i < r->r.n_tensors ? &r->r.tensors[i] : NULL;
}

const qk_model_totals *qk_model_result_totals(const qk_model_result *r) { return r ? &r->totals : NULL; }

const char *qk_model_result_notes(const qk_model_result *r) { return r ? r->r.notes : ""; }

qk_status qk_model_result_stats(const qk_model_result *r, qk_model_stats *stats) {
    if (!r || !stats) return qk_fail(NULL, QK_ERR_INVALID_ARG, "qk_model_result_stats: result and stats are required");
    *stats = r->r.stats;
    return QK_OK;
}

size_t qk_model_result_curve_count(const qk_model_result *r) { return r ? r->r.n_curve : 0; }

const qk_model_curve_point *qk_model_result_curve(const qk_model_result *r, size_t i) {
    return r && i < r->r.n_curve ? &r->r.curve[i] : NULL;
}

size_t qk_model_result_preset_count(const qk_model_result *r) { return r ? r->r.n_presets : 0; }

const qk_model_preset_point *qk_model_result_preset(const qk_model_result *r, size_t i) {
    return r && i < r->r.n_presets ? &r->r.presets[i] : NULL;
}

size_t qk_model_result_device_count(const qk_model_result *r) { return r ? r->r.n_devices : 0; }

const qk_model_device_stats *qk_model_result_device(const qk_model_result *r, size_t i) {
    return r && i < r->r.n_devices ? &r->r.devices[i] : NULL;
}

void qk_model_result_free(qk_model_result *r) {
    if (!r) return;
    qk_model_quantize_result_free(&r->r);
    free(r);
}

/* ---- the two calls ------------------------------------------------------------------------- */

qk_status qk_model_quantize(qk_context *ctx, const qk_model_quantize_desc *d, qk_model_result **result) {
    if (result) *result = NULL;
    if (!ctx) return qk_fail(NULL, QK_ERR_INVALID_ARG, "qk_model_quantize: context is NULL");
    if (!result) return qk_fail(ctx, QK_ERR_INVALID_ARG, "qk_model_quantize: result is NULL");
    qk_model_quantize_params p;
    qk_model_quantize_params_init(&p);
    qk_status st = recipe_options(ctx, "qk_model_quantize", d, &p.plan);
    if (st == QK_OK) st = check_files(ctx, d);
    if (st == QK_OK) st = check_contexts(ctx, d);
    if (st != QK_OK) return st;
    p.input = d->input;
    p.output = d->output;
    p.imatrix_path = d->imatrix;
    p.include_weights = d->include_weights;
    p.n_include = d->n_include;
    p.exclude_weights = d->exclude_weights;
    p.n_exclude = d->n_exclude;
    p.kv_overrides = d->kv_overrides;
    p.n_kv_overrides = d->n_kv_overrides;
    p.prune_layers = d->prune_layers;
    p.n_prune_layers = d->n_prune_layers;
    p.keep_split = d->keep_split;
    p.split_max_bytes = d->split_max_bytes;
    p.shard_index = d->shard_index;
    p.shard_count = d->shard_count;
    p.dry_run = d->dry_run;
    p.resume = d->resume;
    p.measure_error = d->measure_error;
    p.chunk_bytes = d->chunk_bytes;
    p.mem_limit = d->mem_limit_bytes;
    p.target_bpw = d->target_bpw;
    p.target_bytes = d->target_bytes;
    p.target_types = d->target_types;
    p.n_target_types = d->n_target_types;
    p.state_file = d->state_file;
    p.target_curve = d->target_curve;
    p.cancel_fn = d->cancel;
    p.progress = d->progress;
    p.user = d->user;
    p.extra_contexts = d->extra_contexts;
    p.n_extra_contexts = d->n_extra_contexts;

    qk_model_result *r = result_new();
    if (!r) return qk_fail(ctx, QK_ERR_OUT_OF_MEMORY, "qk_model_quantize: out of host memory");
    if ((st = qk_model_quantize_run(ctx, &p, &r->r)) != QK_OK) {
        free(r); /* the run released its own result */
        return st;
    }
    result_close(r);
    *result = r;
    return QK_OK;
}

qk_status qk_model_plan(const qk_model_quantize_desc *recipe, const qk_model_plan_desc *m, qk_model_result **result) {
    if (result) *result = NULL;
    if (!m || !result) return qk_fail(NULL, QK_ERR_INVALID_ARG, "qk_model_plan: model and result are required");
    if (m->struct_size < sizeof *m)
        return qk_fail(NULL, QK_ERR_INVALID_ARG, "qk_model_plan_desc.struct_size is %zu, expected %zu", m->struct_size,
                       sizeof *m);
    if (m->n_tensors && !m->tensors)
        return qk_fail(NULL, QK_ERR_INVALID_ARG, "qk_model_plan: %zu tensors but no array", m->n_tensors);
    qk_plan_options opt;
    qk_status st = recipe_options(NULL, "qk_model_plan", recipe, &opt);
    if (st != QK_OK) return st;
    opt.has_imatrix = m->has_imatrix != 0;
    const size_t n = m->n_tensors;
    for (size_t i = 0; i < n; i++) /* the rows hold names as a file does */
        if (!m->tensors[i].name || strlen(m->tensors[i].name) > QK_GGUF_MAX_NAME)
            return qk_fail(NULL, QK_ERR_INVALID_ARG, "qk_model_plan: tensor %zu has no name or one over %d bytes", i,
                           QK_GGUF_MAX_NAME);
    const qk_plan_model model = {m->arch ? m->arch : "", m->n_layer, m->n_head, m->n_head_kv, m->n_expert};

    qk_model_result *r = result_new();
    qk_plan_entry *e = calloc(n ? n : 1, sizeof *e);
    if (r) r->r.tensors = calloc(n ? n : 1, sizeof *r->r.tensors);
    if (!r || !e || !r->r.tensors) {
        st = qk_fail(NULL, QK_ERR_OUT_OF_MEMORY, "qk_model_plan: out of host memory for %zu tensors", n);
        goto fail;
    }
    if ((st = qk_plan_build(&model, &opt, m->tensors, n, e)) != QK_OK) goto fail;
    for (size_t i = 0; i < n; i++) qk_model_result_add_row(&r->r, &m->tensors[e[i].tensor], &e[i]);
    assert(r->r.n_tensors == n);
    r->r.n_splits = 1;
    r->r.imatrix_entries = -1;
    r->r.in_tensors = n;
    free(e);
    result_close(r);
    *result = r;
    return QK_OK;
fail:
    free(e);
    qk_model_result_free(r);
    return st;
}
