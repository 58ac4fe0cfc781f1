/* qk_moe_matmul, qk_moe_gate_up and qk_moe_weighted_sum (and their asynchronous forms of
 * qkern_cuda.h): one validation of the desc into the call's description (qk_moe_args), one plan
 * by the backend that runs it (the device's, or the cpu's in its stead), staging of the operands
 * it cannot address, the workspace of a synchronous call, then the backend's moe. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats.h"
#include "internal.h"
#include "invariants.h"
#include "qkern_cuda.h"

/* Kernels index slots and rows with 32-bit integers. */
#define MOE_MAX_DIM    ((int64_t)1 << 30)
#define MOE_MAX_USED   1024
#define MOE_MAX_EXPERT 65536

static const char *const kind_name[] = {"qk_moe_matmul", "qk_moe_gate_up", "qk_moe_weighted_sum"};

qk_moe_desc qk_moe_default_desc(void) {
    qk_moe_desc d = {0};
    d.struct_size = sizeof d;
    d.type = QK_TYPE_Q4_K;
    d.x_type = QK_TYPE_F32;
    d.n_expert = 1;
    d.n_used = 1;
    return d;
}

static int mem_empty(const qk_mem *m) { return !m->buffer && !m->host && !m->device; }

/* The bytes each operand must hold. */
typedef struct moe_sizes {
    size_t w, x, ids, router, y;
} moe_sizes;

static int mul3(size_t a, size_t b, size_t c, size_t *out) {
    return !__builtin_mul_overflow(a, b, out) && !__builtin_mul_overflow(*out, c, out);
}

/* The operands a call reads, and no other. */
static qk_status check_presence(qk_context *ctx, const qk_moe_desc *d, qk_moe_kind kind) {
    const char *what = kind_name[kind];
    if (mem_empty(&d->ids) && d->n_expert != 1)
        return qk_fail(ctx, QK_ERR_INVALID_ARG, "%s: ids are required with %lld experts", what, (long long)d->n_expert);
    if (kind == QK_MOE_GATE_UP && mem_empty(&d->w_up))
        return qk_fail(ctx, QK_ERR_INVALID_ARG, "qk_moe_gate_up: w_up (the up projection) is required");
    if (kind != QK_MOE_GATE_UP && !mem_empty(&d->w_up))
        return qk_fail(ctx, QK_ERR_INVALID_ARG, "%s: w_up is given, but only qk_moe_gate_up reads it", what);
    if (kind == QK_MOE_WEIGHTED_SUM && mem_empty(&d->router))
        return qk_fail(ctx, QK_ERR_INVALID_ARG, "qk_moe_weighted_sum: router (the weights per slot) is required");
    if (kind != QK_MOE_WEIGHTED_SUM && !mem_empty(&d->router))
        return qk_fail(ctx, QK_ERR_INVALID_ARG, "%s: router is given, but only qk_moe_weighted_sum reads it", what);
    return QK_OK;
}

/* The one validation of a call: shapes, types and (for a call, not the workspace query) which
 * operands are given, into the description every later step reads (*a, the operands' sizes in
 * *sz), and where it runs (*ex). */
static qk_status check_moe(qk_context *ctx, const qk_moe_desc *d, qk_moe_kind kind, int query, int async, moe_sizes *sz,
                           qk_moe_args *a, qk_exec *ex) {
    const char *what = query ? "qk_moe_workspace_size" : kind_name[kind];
    if (!ctx) return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: context is NULL", what);
    if (!d) return qk_fail(ctx, QK_ERR_INVALID_ARG, "%s: desc is NULL", what);
    if (d->struct_size < sizeof *d)
        return qk_fail(ctx, QK_ERR_INVALID_ARG, "qk_moe_desc.struct_size is %zu, expected %zu", d->struct_size,
                       sizeof *d);
    const qk_format *f = qk_format_of(d->type);
    if (!f) return qk_fail(ctx, QK_ERR_TYPE, "%s: unknown weight type id %d", what, (int)d->type);
    size_t esize = qk_float_type_size(d->x_type);
    if (!esize)
        return qk_fail(ctx, QK_ERR_TYPE, "%s: activations must be F32, F16 or BF16, not type id %d", what,
                       (int)d->x_type);
    if (d->n_expert < 1 || d->m < 1 || d->k < 1 || d->n_tokens < 1 || d->n_used < 1 || d->n_expert > MOE_MAX_EXPERT ||
        d->n_used > MOE_MAX_USED || d->m > MOE_MAX_DIM || d->k > MOE_MAX_DIM || d->n_tokens > MOE_MAX_DIM ||
        d->n_tokens * d->n_used > MOE_MAX_DIM)
        return qk_fail(ctx, QK_ERR_SHAPE,
                       "%s: n_expert %lld, m %lld, k %lld, n_tokens %lld, n_used %lld: each must be at least 1 "
                       "(n_expert at most %d, n_used at most %d, the others and n_tokens * n_used below 2^30)",
                       what, (long long)d->n_expert, (long long)d->m, (long long)d->k, (long long)d->n_tokens,
                       (long long)d->n_used, MOE_MAX_EXPERT, MOE_MAX_USED);
    if (d->k % f->block_elems)
        return qk_fail(ctx, QK_ERR_SHAPE, "%s: k = %lld is not a multiple of %s's block size %d", what, (long long)d->k,
                       f->name, f->block_elems);
    if (d->x_per_slot != 0 && d->x_per_slot != 1)
        return qk_fail(ctx, QK_ERR_INVALID_ARG, "%s: x_per_slot is %d, must be 0 or 1", what, d->x_per_slot);
    if (d->precision != QK_MOE_PRECISION_DEFAULT && d->precision != QK_MOE_PRECISION_EXACT)
        return qk_fail(ctx, QK_ERR_INVALID_ARG, "%s: precision is %d, must be QK_MOE_PRECISION_DEFAULT or _EXACT", what,
                       (int)d->precision);
    const size_t slots = (size_t)(d->n_tokens * d->n_used);
    const size_t x_rows = d->x_per_slot ? slots : (size_t)d->n_tokens;
    const size_t y_rows = kind == QK_MOE_WEIGHTED_SUM ? (size_t)d->n_tokens : slots;
    size_t row_bytes = qk_type_row_bytes(d->type, d->k);
    if (!row_bytes || !mul3((size_t)d->n_expert, (size_t)d->m, row_bytes, &sz->w) ||
        !mul3(x_rows, (size_t)d->k, esize, &sz->x) || !mul3(y_rows, (size_t)d->m, sizeof(float), &sz->y))
        return qk_fail(ctx, QK_ERR_SHAPE, "%s: the operands are too large to address", what);
    sz->ids = mem_empty(&d->ids) && d->n_expert == 1 ? 0 : slots * sizeof(int32_t);
    sz->router = kind == QK_MOE_WEIGHTED_SUM ? slots * sizeof(float) : 0;
    qk_status st = qk_exec_choose(ctx, QK_OP_MOE, d->type, async, !query, what, ex);
    if (st == QK_OK && !query) st = check_presence(ctx, d, kind);
    if (st != QK_OK) return st;
    memset(a, 0, sizeof *a);
    a->kind = kind;
    a->type = d->type;
    a->x_type = d->x_type;
    a->n_expert = d->n_expert;
    a->m = d->m;
    a->k = d->k;
    a->n_tokens = d->n_tokens;
    a->n_used = d->n_used;
    a->x_per_slot = d->x_per_slot;
    a->exact = d->precision == QK_MOE_PRECISION_EXACT;
    a->async = async;
    return QK_OK;
}

/* The backend's plan of a checked call: the one per call. */
static void plan_moe(const qk_exec *ex, const qk_moe_args *a, qk_moe_plan *plan) {
    memset(plan, 0, sizeof *plan);
    ex->backend->moe_plan(ex->state, a, plan);
    assert(plan->args == a && plan->workspace <= plan->workspace_query);
}

qk_status qk_moe_workspace_size(qk_context *ctx, const qk_moe_desc *d, size_t *bytes) {
    if (!bytes) return qk_fail(ctx, QK_ERR_INVALID_ARG, "qk_moe_workspace_size: bytes is NULL");
    *bytes = 0;
    moe_sizes sz;
    qk_moe_args a;
    qk_exec ex;
    /* the plain product's output is the largest, so its checks are the strictest of the three */
    qk_status st = check_moe(ctx, d, QK_MOE_MATMUL, 1, 0, &sz, &a, &ex);
    if (st != QK_OK) return st;
    qk_moe_plan plan;
    plan_moe(&ex, &a, &plan);
    /* where the cpu would run the call in the device's stead, it uses scratch of its own */
    *bytes = ex.fallback ? 0 : plan.workspace_query;
    ctx->error[0] = 0;
    return QK_OK;
}

/* A synchronous call checks every id before anything runs: from the operand as resolved where
 * that is host memory, else from the caller's memory. */
static qk_status check_ids(qk_context *ctx, const qk_exec *ex, const qk_moe_desc *d, const qk_operand *op,
                           const char *what) {
    const size_t slots = (size_t)(d->n_tokens * d->n_used);
    const int32_t *ids = op->addr;
    int32_t *copy = NULL;
    qk_status st = QK_OK;
    if (!ex->backend->host_memory) {
        if (!(copy = malloc(slots * sizeof *copy)))
            return qk_fail(ctx, QK_ERR_OUT_OF_MEMORY, "%s: cannot allocate %zu ids to check", what, slots);
        const qk_mem *m = &d->ids;
        if (m->host)
            memcpy(copy, m->host, slots * sizeof *copy);
        else
            st = ctx->backend->read(ctx, ctx->state, m->buffer ? m->buffer->mem : m->device, m->offset, copy,
                                    slots * sizeof *copy);
        ids = copy;
    }
    for (size_t i = 0; st == QK_OK && i < slots; i++)
        if (ids[i] < 0 || ids[i] >= d->n_expert)
            st = qk_fail(ctx, QK_ERR_VALUE, "%s: ids[%lld][%lld] is %d, outside [0, %lld)", what,
                         (long long)(i / (size_t)d->n_used), (long long)(i % (size_t)d->n_used), (int)ids[i],
                         (long long)d->n_expert);
    free(copy);
    return st;
}

enum { OP_W, OP_W_UP, OP_X, OP_IDS, OP_ROUTER, OP_Y, OP_WORKSPACE, OP_COUNT };

qk_status qk_moe_run(qk_context *ctx, const qk_moe_desc *d, qk_moe_kind kind, int async, void *stream) {
    const char *what = kind_name[kind];
    moe_sizes sz;
    qk_moe_args a;
    qk_exec ex;
    qk_status st = check_moe(ctx, d, kind, 0, async, &sz, &a, &ex);
    if (st != QK_OK) return st;
    qk_moe_plan plan;
    plan_moe(&ex, &a, &plan);
    /* a given workspace must hold what the query promised; one the call allocates itself, only
     * what this call uses. The cpu of a fallback uses its own: a given one is the device's. */
    const int own_workspace = mem_empty(&d->workspace) || ex.fallback;
    if (own_workspace && async && plan.workspace_query)
        return qk_fail(ctx, QK_ERR_INVALID_ARG,
                       "%s: an asynchronous call needs a workspace of %zu bytes (qk_moe_workspace_size)", what,
                       plan.workspace_query);

    const struct {
        const qk_mem *mem;
        size_t bytes;
        int is_input;
        const char *name;
    } ops[OP_COUNT] = {
        [OP_W] = {&d->w, sz.w, 1, "w"},
        [OP_W_UP] = {&d->w_up, kind == QK_MOE_GATE_UP ? sz.w : 0, 1, "w_up"},
        [OP_X] = {&d->x, sz.x, 1, "x"},
        [OP_IDS] = {&d->ids, sz.ids, 1, "ids"},
        [OP_ROUTER] = {&d->router, sz.router, 1, "router"},
        [OP_Y] = {&d->y, sz.y, 0, "y"},
        [OP_WORKSPACE] = {&d->workspace, own_workspace ? 0 : plan.workspace_query, 0, "workspace"},
    };
    qk_operand op[OP_COUNT] = {{0}};
    void *scratch = NULL;
    for (int i = 0; i < OP_COUNT && st == QK_OK; i++) {
        if (!ops[i].bytes) continue;
        char name[64];
        snprintf(name, sizeof name, "%s: %s", what, ops[i].name);
        st = qk_resolve(ctx, &ex, ops[i].mem, ops[i].bytes, ops[i].is_input, async, name, &op[i]);
    }
    if (st == QK_OK && own_workspace && plan.workspace &&
        (st = ex.backend->alloc(ctx, ex.state, plan.workspace, &scratch)) == QK_OK)
        op[OP_WORKSPACE].addr = ex.backend->address(scratch, 0);
    /* after the operands' sizes are checked: the ids are read only where they fit */
    if (st == QK_OK && !async && sz.ids) st = check_ids(ctx, &ex, d, &op[OP_IDS], what);
    if (st == QK_OK) {
        assert(op[OP_W].addr && op[OP_X].addr && op[OP_Y].addr && (!plan.workspace || op[OP_WORKSPACE].addr));
        a.w = op[OP_W].addr;
        a.w_up = op[OP_W_UP].addr;
        a.x = op[OP_X].addr;
        a.ids = op[OP_IDS].addr;
        a.router = op[OP_ROUTER].addr;
        a.y = op[OP_Y].addr;
        a.workspace = op[OP_WORKSPACE].addr;
        a.stream = stream;
        a.plan = &plan;
        st = ex.backend->moe(ctx, ex.state, &a);
    }
    if (st == QK_OK) st = qk_write_back(ctx, &ex, &op[OP_Y]);
    for (int i = 0; i < OP_COUNT; i++) qk_release(&ex, &op[i]);
    if (scratch) ex.backend->free(ex.state, scratch);
    if (st == QK_OK) ctx->error[0] = 0;
    return st;
}

qk_status qk_moe_matmul(qk_context *ctx, const qk_moe_desc *d) { return qk_moe_run(ctx, d, QK_MOE_MATMUL, 0, NULL); }
qk_status qk_moe_gate_up(qk_context *ctx, const qk_moe_desc *d) { return qk_moe_run(ctx, d, QK_MOE_GATE_UP, 0, NULL); }
qk_status qk_moe_weighted_sum(qk_context *ctx, const qk_moe_desc *d) {
    return qk_moe_run(ctx, d, QK_MOE_WEIGHTED_SUM, 0, NULL);
}

static qk_status moe_async(qk_context *ctx, const qk_moe_desc *d, qk_moe_kind kind, void *stream, const char *what) {
    qk_status st = qk_check_async(ctx, what);
    return st != QK_OK ? st : qk_moe_run(ctx, d, kind, 1, stream);
}

qk_status qk_cuda_moe_matmul_async(qk_context *ctx, const qk_moe_desc *d, qk_cuda_stream stream) {
    return moe_async(ctx, d, QK_MOE_MATMUL, stream, "qk_cuda_moe_matmul_async");
}
qk_status qk_cuda_moe_gate_up_async(qk_context *ctx, const qk_moe_desc *d, qk_cuda_stream stream) {
    return moe_async(ctx, d, QK_MOE_GATE_UP, stream, "qk_cuda_moe_gate_up_async");
}
qk_status qk_cuda_moe_weighted_sum_async(qk_context *ctx, const qk_moe_desc *d, qk_cuda_stream stream) {
    return moe_async(ctx, d, QK_MOE_WEIGHTED_SUM, stream, "qk_cuda_moe_weighted_sum_async");
}
