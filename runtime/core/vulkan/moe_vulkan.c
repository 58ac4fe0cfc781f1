/* The MoE matmul on Vulkan (qk_moe_matmul, qk_moe_gate_up, qk_moe_weighted_sum): which path
 * runs, from one table of thresholds; the workspace layout; and the batch of dispatches.
 *
 * Two paths, as on CUDA (kernels/cuda/moe_kernels.cuh):
 *   - the vector path (shaders/moe_vec.comp) for few tokens: every slot reads its expert's rows;
 *   - the tiled path for many: moe_route.comp groups the slots by expert into tiles on the GPU,
 *     then moe_tiled.comp multiplies one expert's row block with one tile's activations, on
 *     cooperative matrices where the device has VK_NV_cooperative_matrix (moe_tiled_cm/<T>),
 *     else with f32 fused multiply-adds (moe_tiled/<T>).
 * The weighted sum is every slot's product into the workspace, then moe_wsum.comp's ordered sum.
 *
 * A weight tensor larger than one binding may address (the device's maxStorageBufferRange, and
 * 2^31 so that shader offsets fit 32 bits) is covered by several dispatches, each binding a
 * window of whole experts, or of whole rows of one expert; each dispatch skips the slots whose
 * expert lies outside its window. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "formats.h"
#include "invariants.h"
#include "vk_internal.h"

/* Up to vec_max_tokens tokens the vector path runs (each slot reads its expert's rows; with so
 * few tokens per expert a tile would be mostly empty, and the routing costs more than it
 * saves). Not yet measured on Vulkan: the default is CUDA's measured one (moe_plan.cu). Float
 * weights take the vector path at every size (moe_tiled.comp has no partial parts for their
 * rows of any length). */
typedef struct moe_threshold {
    int type; /* -1: the default */
    int vec_max_tokens;
} moe_threshold;

static const moe_threshold thresholds[] = {
    {-1, 8},
    {QK_TYPE_F32, INT_MAX},
    {QK_TYPE_F16, INT_MAX},
    {QK_TYPE_BF16, INT_MAX},
};

static const moe_threshold *threshold_of(qk_type type) {
    for (size_t i = 0; i < sizeof thresholds / sizeof thresholds[0]; i++)
        if (thresholds[i].type == (int)type) return &thresholds[i];
    return &thresholds[0];
}

/* The shaders' shapes (moe_vec.comp, moe_tiled.comp). */
#define VEC_TEAMS       4u  /* 32-lane teams per workgroup */
#define VEC_RPT         2u  /* rows per sub-team */
#define TILED_VROWS     64u /* plain: weight rows per workgroup (gate/up: 32 of each) */
#define TILED_BN        32u
#define TILED_SHARED    (64u * 65u * 4u + 32u * 65u * 4u + 32u * 4u)
#define TILED_CM_VROWS  128u
#define TILED_CM_BN     64u
#define TILED_CM_SHARED (128u * 9u * 16u + 64u * 9u * 16u + 8u * 256u * 4u + 64u * 4u)
#define ROUTE_THREADS   256u
#define WSUM_THREADS    256u
#define MAX_GROUPS      65535u
#define MAX_WINDOWS     128 /* weight windows per call: a batch holds 512 dispatches */

/* Push constants after qk_off[], as the shaders declare them. */
typedef struct vec_params {
    uint32_t m, k, n_expert, n_used;
    uint32_t n_slots, x_type, x_per_slot, has_ids;
    uint32_t gate_up, lanes, row_bytes, nan_bad;
    uint32_t e_lo, e_hi, r_lo, r_hi;
    uint32_t use_shuffle;
} vec_params;

typedef struct tiled_params {
    uint32_t m, k, n_used, x_type;
    uint32_t x_per_slot, gate_up, row_bytes, e_lo;
    uint32_t e_hi, r_lo, r_hi, tiles;
    uint32_t n_tiles, sorted;
} tiled_params;

typedef struct route_params {
    uint32_t n_slots, n_expert, has_ids, bn;
    uint32_t m, counts, cursor, n_tiles;
    uint32_t tiles, sorted;
} route_params;

typedef struct wsum_params {
    uint32_t n_tokens, n_used, m;
} wsum_params;

enum { PATH_VEC, PATH_TILED, PATH_TILED_CM };

/* The path and the workspace layout (byte offsets; the route's arrays as word offsets from its
 * start). */
typedef struct moe_plan {
    int path;
    uint32_t bn, vrows, max_tiles;
    uint32_t counts, cursor, n_tiles, tiles, sorted; /* words, in the route region */
    size_t route, route_bytes, partial, bytes;
} moe_plan;

static size_t align_up(size_t n) { return (n + 255) & ~(size_t)255; }

/* A shader variant this device can run (embedded, its features enabled). */
static int has_variant(const qk_vk_state *s, const char *op, qk_type type) {
    char name[QK_VK_NAME_LEN], buf[160];
    return !qk_vk_shader_lacks(s, qk_vk_variant(name, op, type), buf, sizeof buf);
}

_Static_assert(sizeof(moe_plan) <= QK_MOE_PLAN_OWN_BYTES, "the Vulkan MoE plan must fit qk_moe_plan.own");

/* The plan of a call; the path and the route's layout do not depend on which of the three calls
 * it is, so the query's promise is this layout with the weighted sum's per-slot products. */
void qk_vk_moe_plan(void *state, const qk_moe_args *a, qk_moe_plan *plan) {
    const qk_vk_state *s = state;
    const qk_vk_features *f = qk_vk_features_of(s);
    moe_plan p;
    memset(&p, 0, sizeof p);
    const int64_t slots = a->n_tokens * a->n_used;
    p.path = PATH_VEC;
    if (a->n_tokens > (int64_t)threshold_of(a->type)->vec_max_tokens) {
        char buf[160];
        const int route = !qk_vk_shader_lacks(s, "moe_route", buf, sizeof buf);
        if (route && f->coopmat_nv && f->subgroup_size == 32 && f->max_shared_bytes >= TILED_CM_SHARED &&
            has_variant(s, "moe_tiled_cm", a->type))
            p.path = PATH_TILED_CM;
        else if (route && f->max_shared_bytes >= TILED_SHARED && has_variant(s, "moe_tiled", a->type))
            p.path = PATH_TILED;
    }
    size_t at = 0;
    if (p.path != PATH_VEC) {
        p.bn = p.path == PATH_TILED_CM ? TILED_CM_BN : TILED_BN;
        p.vrows = p.path == PATH_TILED_CM ? TILED_CM_VROWS : TILED_VROWS;
        const int64_t touched = a->n_expert < slots ? a->n_expert : slots;
        p.max_tiles = (uint32_t)(touched + slots / p.bn + 1);
        const uint32_t e = (uint32_t)a->n_expert;
        p.counts = 0;
        p.cursor = e;
        p.n_tiles = 2 * e;
        p.tiles = (2 * e + 1 + 3) & ~3u;
        p.sorted = p.tiles + 4 * p.max_tiles;
        p.route = at;
        p.route_bytes = ((size_t)p.sorted + (size_t)slots) * 4;
        at += align_up(p.route_bytes);
    }
    p.partial = at;
    const size_t partial = align_up((size_t)slots * (size_t)a->m * sizeof(float));
    p.bytes = a->kind == QK_MOE_WEIGHTED_SUM ? at + partial : at;
    plan->args = a;
    plan->workspace = p.bytes;
    plan->workspace_query = at + partial;
    memcpy(plan->own.bytes, &p, sizeof p);
}

/* A window of the weights: experts [e_lo, e_hi) and of them rows [r_lo, r_hi). */
typedef struct weight_window {
    int64_t e_lo, e_hi, r_lo, r_hi;
    uint64_t offset, bytes; /* of the window in each weight tensor */
} weight_window;

/* The windows that cover the weights, at most MAX_WINDOWS; 0 if more would be needed. */
static int windows_of(const qk_vk_state *s, const qk_moe_args *a, uint64_t row_bytes, weight_window *win) {
    const uint64_t lim = qk_vk_binding_limit(s);
    const uint64_t expert_bytes = (uint64_t)a->m * row_bytes;
    int n = 0;
    if (expert_bytes <= lim) {
        const int64_t per = (int64_t)(lim / expert_bytes);
        for (int64_t e = 0; e < a->n_expert; e += per, n++) {
            if (n == MAX_WINDOWS) return 0;
            const int64_t e_hi = e + per < a->n_expert ? e + per : a->n_expert;
            win[n] = (weight_window){e, e_hi, 0, a->m, (uint64_t)e * expert_bytes, (uint64_t)(e_hi - e) * expert_bytes};
        }
        return n;
    }
    const int64_t per = (int64_t)(lim / row_bytes);
    if (per < 1) return 0;
    for (int64_t e = 0; e < a->n_expert; e++)
        for (int64_t r = 0; r < a->m; r += per, n++) {
            if (n == MAX_WINDOWS) return 0;
            const int64_t r_hi = r + per < a->m ? r + per : a->m;
            const uint64_t offset = (uint64_t)e * expert_bytes + (uint64_t)r * row_bytes;
            win[n] = (weight_window){e, e + 1, r, r_hi, offset, (uint64_t)(r_hi - r) * row_bytes};
        }
    return n;
}

static uint32_t groups(uint64_t n) { return (uint32_t)(n < 1 ? 1 : (n < MAX_GROUPS ? n : MAX_GROUPS)); }

/* Everything one call records: its arguments, plan and weight windows. */
typedef struct moe_job {
    const qk_moe_args *a;
    const moe_plan *plan;
    uint64_t row_bytes, x_bytes, slots;
    int n_windows;
    weight_window win[MAX_WINDOWS];
    float *out; /* y, or the weighted sum's per-slot products */
} moe_job;

static qk_status record_vec(qk_context *ctx, qk_vk_state *s, const moe_job *j) {
    const qk_moe_args *a = j->a;
    char name[QK_VK_NAME_LEN];
    qk_vk_variant(name, "moe_vec", a->type);
    uint32_t parts = (uint32_t)((a->k + 31) / 32), lanes = 1;
    while (lanes < parts && lanes < 32) lanes *= 2;
    const uint64_t rows_wg = VEC_TEAMS * (32 / lanes) * VEC_RPT;
    vec_params p = {.m = (uint32_t)a->m,
                    .k = (uint32_t)a->k,
                    .n_expert = (uint32_t)a->n_expert,
                    .n_used = (uint32_t)a->n_used,
                    .n_slots = (uint32_t)j->slots,
                    .x_type = (uint32_t)a->x_type,
                    .x_per_slot = (uint32_t)a->x_per_slot,
                    .has_ids = a->ids != NULL,
                    .gate_up = a->kind == QK_MOE_GATE_UP,
                    .lanes = lanes,
                    .row_bytes = (uint32_t)j->row_bytes,
                    .use_shuffle = qk_vk_features_of(s)->subgroup_size == 32};
    for (int w = 0; w < j->n_windows; w++) {
        const weight_window *win = &j->win[w];
        p.nan_bad = w == 0;
        p.e_lo = (uint32_t)win->e_lo, p.e_hi = (uint32_t)win->e_hi;
        p.r_lo = (uint32_t)win->r_lo, p.r_hi = (uint32_t)win->r_hi;
        const void *w_up = a->kind == QK_MOE_GATE_UP ? a->w_up : a->w;
        qk_vk_arg args[5] = {{qk_vk_at(a->w, win->offset), win->bytes},
                             {qk_vk_at(w_up, win->offset), win->bytes},
                             {a->x, j->x_bytes},
                             {a->ids, a->ids ? j->slots * 4 : 0},
                             {j->out, j->slots * (uint64_t)a->m * 4}};
        qk_status st = qk_vk_dispatch(ctx, s, name, args, 5, &p, sizeof p, groups((a->m + rows_wg - 1) / rows_wg),
                                      groups(j->slots), 1);
        if (st != QK_OK) return st;
    }
    return QK_OK;
}

static qk_status record_tiled(qk_context *ctx, qk_vk_state *s, const moe_job *j) {
    const qk_moe_args *a = j->a;
    const moe_plan *pl = j->plan;
    const void *route = qk_vk_at(a->workspace, pl->route);
    route_params rp = {.n_slots = (uint32_t)j->slots,
                       .n_expert = (uint32_t)a->n_expert,
                       .has_ids = a->ids != NULL,
                       .bn = pl->bn,
                       .m = (uint32_t)a->m,
                       .counts = pl->counts,
                       .cursor = pl->cursor,
                       .n_tiles = pl->n_tiles,
                       .tiles = pl->tiles,
                       .sorted = pl->sorted};
    qk_vk_arg rargs[3] = {
        {a->ids, a->ids ? j->slots * 4 : 0}, {route, pl->route_bytes}, {j->out, j->slots * (uint64_t)a->m * 4}};
    qk_status st = qk_vk_dispatch(ctx, s, "moe_route", rargs, 3, &rp, sizeof rp, 1, 1, 1);
    if (st != QK_OK) return st;

    char name[QK_VK_NAME_LEN];
    qk_vk_variant(name, pl->path == PATH_TILED_CM ? "moe_tiled_cm" : "moe_tiled", a->type);
    const int gated = a->kind == QK_MOE_GATE_UP;
    const uint64_t tm = gated ? pl->vrows / 2 : pl->vrows;
    tiled_params p = {.m = (uint32_t)a->m,
                      .k = (uint32_t)a->k,
                      .n_used = (uint32_t)a->n_used,
                      .x_type = (uint32_t)a->x_type,
                      .x_per_slot = (uint32_t)a->x_per_slot,
                      .gate_up = (uint32_t)gated,
                      .row_bytes = (uint32_t)j->row_bytes,
                      .tiles = pl->tiles,
                      .n_tiles = pl->n_tiles,
                      .sorted = pl->sorted};
    for (int w = 0; w < j->n_windows && st == QK_OK; w++) {
        const weight_window *win = &j->win[w];
        p.e_lo = (uint32_t)win->e_lo, p.e_hi = (uint32_t)win->e_hi;
        p.r_lo = (uint32_t)win->r_lo, p.r_hi = (uint32_t)win->r_hi;
        const void *w_up = gated ? a->w_up : a->w;
        qk_vk_arg args[5] = {{qk_vk_at(a->w, win->offset), win->bytes},
                             {qk_vk_at(w_up, win->offset), win->bytes},
                             {a->x, j->x_bytes},
                             {route, pl->route_bytes},
                             {j->out, j->slots * (uint64_t)a->m * 4}};
        st =
            qk_vk_dispatch(ctx, s, name, args, 5, &p, sizeof p, groups((a->m + tm - 1) / tm), groups(pl->max_tiles), 1);
    }
    return st;
}

static qk_status record_moe(qk_context *ctx, qk_vk_state *s, const moe_job *j) {
    const qk_moe_args *a = j->a;
    qk_status st = j->plan->path == PATH_VEC ? record_vec(ctx, s, j) : record_tiled(ctx, s, j);
    if (st != QK_OK || a->kind != QK_MOE_WEIGHTED_SUM) return st;
    wsum_params p = {(uint32_t)a->n_tokens, (uint32_t)a->n_used, (uint32_t)a->m};
    qk_vk_arg args[3] = {{j->out, j->slots * (uint64_t)a->m * 4},
                         {a->router, j->slots * 4},
                         {a->y, (uint64_t)a->n_tokens * (uint64_t)a->m * 4}};
    return qk_vk_dispatch(ctx, s, "moe_wsum", args, 3, &p, sizeof p,
                          groups(((uint64_t)a->n_tokens * (uint64_t)a->m + WSUM_THREADS - 1) / WSUM_THREADS), 1, 1);
}

/* The shaders read words: an operand must start at a multiple of its element's size. */
static qk_status check_aligned(qk_context *ctx, const qk_vk_state *s, const void *addr, uint64_t align,
                               const char *what) {
    void *buf;
    uint64_t off, avail;
    if (!addr) return QK_OK;
    if (!qk_vk_locate(s, addr, &buf, &off, &avail))
        return qk_fail(ctx, QK_ERR_INVALID_ARG, "vulkan: MoE: %s is not memory of this context", what);
    if (off % align)
        return qk_fail(ctx, QK_ERR_INVALID_ARG, "vulkan: MoE: %s lies at byte offset %llu, not a multiple of %llu",
                       what, (unsigned long long)off, (unsigned long long)align);
    return QK_OK;
}

/* Synchronous and asynchronous calls alike record one batch and wait for it (Vulkan has no
 * caller's stream to enqueue on); an id out of range is never read through either way. */
qk_status qk_vk_moe(qk_context *ctx, void *state, const qk_moe_args *a) {
    qk_vk_state *s = state;
    moe_job job, *j = &job;
    memset(j, 0, sizeof *j);
    j->a = a;
    const qk_moe_plan *plan = a->plan;
    assert(plan && plan->args == a);
    moe_plan pl; /* the backend's part of the plan, as moe_plan stored it */
    memcpy(&pl, plan->own.bytes, sizeof pl);
    j->plan = &pl;
    j->row_bytes = qk_type_row_bytes(a->type, a->k);
    j->slots = (uint64_t)(a->n_tokens * a->n_used);
    const size_t esize = qk_float_type_size(a->x_type);
    j->x_bytes = (a->x_per_slot ? j->slots : (uint64_t)a->n_tokens) * (uint64_t)a->k * esize;
    if (j->plan->bytes && !a->workspace)
        return qk_fail(ctx, QK_ERR_INVALID_ARG, "vulkan: MoE: a workspace of %zu bytes is required", j->plan->bytes);
    j->out = a->kind == QK_MOE_WEIGHTED_SUM ? (float *)qk_vk_at(a->workspace, j->plan->partial) : a->y;
    qk_status st = check_aligned(ctx, s, a->x, esize, "x");
    if (st == QK_OK) st = check_aligned(ctx, s, a->ids, 4, "ids");
    if (st == QK_OK) st = check_aligned(ctx, s, a->router, 4, "router");
    if (st == QK_OK) st = check_aligned(ctx, s, a->y, 4, "y");
    if (st == QK_OK) st = check_aligned(ctx, s, a->workspace, 4, "workspace");
    if (st != QK_OK) return st;
    j->n_windows = windows_of(s, a, j->row_bytes, j->win);
    if (!j->n_windows)
        return qk_fail(ctx, QK_ERR_BUFFER,
                       "vulkan: MoE: %lld experts of %lld rows of %llu bytes need more than %d bindings of this "
                       "device's storage range (%llu bytes)",
                       (long long)a->n_expert, (long long)a->m, (unsigned long long)j->row_bytes, MAX_WINDOWS,
                       (unsigned long long)qk_vk_features_of(s)->max_storage_range);
    st = qk_vk_begin(ctx, s);
    if (st != QK_OK) return st;
    qk_status rec = record_moe(ctx, s, j);
    st = qk_vk_submit(ctx, s, NULL); /* also closes a batch whose recording failed */
    return rec != QK_OK ? rec : st;
}
