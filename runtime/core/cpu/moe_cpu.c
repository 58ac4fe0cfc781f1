/* Expert-batched matmul on the CPU: slots grouped by expert (a counting sort), then each weight
 * row is dequantized once and multiplied with every slot routed to its expert. Work items are
 * (expert, rows) pairs, so a hot expert spreads over all workers and idle experts cost nothing. */
#include "moe_cpu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_dispatch.h"
#include "internal.h"
#include "parallel.h"

/* Weight rows dequantized together: each activation row fetched serves this many rows. */
#define ROW_TILE 8
/* Multiply-adds per work item, enough to amortize taking it and few enough to balance. */
#define ITEM_WORK (1 << 16)
/* Independent partial sums of a dot product: a fixed order the compiler can vectorize. */
#define LANES 8

typedef struct moe_item {
    int64_t expert, row_begin, row_end;
} moe_item;

typedef struct moe_job {
    const qk_moe_args *a;
    qk_cpu_dequant_fn dequant;
    size_t row_bytes;
    const float *x;       /* the activations as f32 */
    const int32_t *slots; /* slot indices grouped by expert, ascending within an expert */
    const int64_t *first; /* expert e's slots are slots[first[e] .. first[e + 1]) */
    const moe_item *items;
    float *out;            /* [slot][m]: y, or the workspace of the weighted sum */
    float *scratch;        /* per worker: ROW_TILE rows of k floats (two sets for gate_up) */
    size_t scratch_floats; /* per worker */
} moe_job;

size_t qk_cpu_moe_partial_bytes(const qk_moe_args *a) {
    return (size_t)(a->n_tokens * a->n_used) * (size_t)a->m * sizeof(float);
}

static float dot(const float *w, const float *x, int64_t k) {
    float acc[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= k; i += LANES)
        for (int l = 0; l < LANES; l++) acc[l] += w[i + l] * x[i + l];
    for (int l = 0; i < k; i++, l++) acc[l] += w[i] * x[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

static float silu(float g) { return g / (1.0f + expf(-g)); }

static void multiply_items(void *arg, int worker, int64_t begin, int64_t end) {
    const moe_job *j = arg;
    const qk_moe_args *a = j->a;
    const int64_t k = a->k, m = a->m;
    const int gated = a->kind == QK_MOE_GATE_UP;
    float *wt = j->scratch + (size_t)worker * j->scratch_floats, *ut = wt + ROW_TILE * k;
    for (int64_t i = begin; i < end; i++) {
        const moe_item *it = &j->items[i];
        const size_t expert_bytes = (size_t)m * j->row_bytes * (size_t)it->expert;
        const uint8_t *w = (const uint8_t *)a->w + expert_bytes;
        const uint8_t *wu = gated ? (const uint8_t *)a->w_up + expert_bytes : NULL;
        for (int64_t r0 = it->row_begin; r0 < it->row_end; r0 += ROW_TILE) {
            const int64_t rows = it->row_end - r0 < ROW_TILE ? it->row_end - r0 : ROW_TILE;
            for (int64_t r = 0; r < rows; r++) {
                j->dequant(w + (size_t)(r0 + r) * j->row_bytes, wt + r * k, k);
                if (gated) j->dequant(wu + (size_t)(r0 + r) * j->row_bytes, ut + r * k, k);
            }
            for (int64_t n = j->first[it->expert]; n < j->first[it->expert + 1]; n++) {
                const int64_t slot = j->slots[n];
                const float *x = j->x + (a->x_per_slot ? slot : slot / a->n_used) * k;
                float *y = j->out + slot * m + r0;
                for (int64_t r = 0; r < rows; r++) {
                    float g = dot(wt + r * k, x, k);
                    y[r] = gated ? silu(g) * dot(ut + r * k, x, k) : g;
                }
            }
        }
    }
}

/* Y[t] = sum over s in order of router[t][s] * out[t][s], from the workspace. */
static void sum_tokens(void *arg, int worker, int64_t begin, int64_t end) {
    (void)worker;
    const moe_job *j = arg;
    const qk_moe_args *a = j->a;
    for (int64_t t = begin; t < end; t++) {
        float *y = a->y + t * a->m;
        for (int64_t s = 0; s < a->n_used; s++) {
            const float r = a->router[t * a->n_used + s], *p = j->out + (t * a->n_used + s) * a->m;
            if (s == 0)
                for (int64_t i = 0; i < a->m; i++) y[i] = r * p[i];
            else
                for (int64_t i = 0; i < a->m; i++) y[i] += r * p[i];
        }
    }
}

typedef struct widen_job {
    qk_cpu_dequant_fn widen;
    const uint8_t *src;
    float *dst;
    int64_t k;
} widen_job;

/* F16 and BF16 activations widen exactly, once, rather than once per weight row. */
static void widen_rows(void *arg, int worker, int64_t begin, int64_t end) {
    (void)worker;
    const widen_job *w = arg;
    for (int64_t r = begin; r < end; r++) w->widen(w->src + (size_t)(r * w->k) * 2, w->dst + r * w->k, w->k);
}

static int64_t expert_of(const qk_moe_args *a, int64_t slot) {
    if (!a->ids) return 0;
    int32_t e = a->ids[slot];
    /* never in a synchronous call (the runtime checks ids): such a slot gets NaN, as on a GPU */
    return e >= 0 && e < a->n_expert ? e : a->n_expert;
}

/* Groups the slots by expert, a stable counting sort: afterwards expert e's slots are
 * slots[first[e] .. first[e + 1]), and group n_expert holds slots with an id out of range.
 * `first` has n_expert + 3 entries. */
static void group_slots(const qk_moe_args *a, int64_t *first, int32_t *slots) {
    const int64_t n_slots = a->n_tokens * a->n_used;
    memset(first, 0, (size_t)(a->n_expert + 3) * sizeof *first);
    for (int64_t s = 0; s < n_slots; s++) first[expert_of(a, s) + 2]++;
    for (int64_t e = 0; e <= a->n_expert; e++) first[e + 2] += first[e + 1];
    /* first[e + 1] is where group e starts; placing its slots moves it to where group e + 1 starts */
    for (int64_t s = 0; s < n_slots; s++) slots[first[expert_of(a, s) + 1]++] = (int32_t)s;
}

/* Rows per work item for an expert with `count` slots, a multiple of ROW_TILE. */
static int64_t rows_per_item(const qk_moe_args *a, int64_t count) {
    int64_t work = a->k * (count + 1) * (a->kind == QK_MOE_GATE_UP ? 2 : 1);
    int64_t rows = (ITEM_WORK / work + ROW_TILE - 1) / ROW_TILE * ROW_TILE;
    return rows < ROW_TILE ? ROW_TILE : rows;
}

static int64_t plan_items(const qk_moe_args *a, const int64_t *first, moe_item *items) {
    int64_t n = 0;
    for (int64_t e = 0; e < a->n_expert; e++) {
        int64_t count = first[e + 1] - first[e];
        if (!count) continue;
        int64_t step = rows_per_item(a, count);
        for (int64_t r = 0; r < a->m; r += step, n++)
            if (items) items[n] = (moe_item){e, r, r + step < a->m ? r + step : a->m};
    }
    return n;
}

qk_status qk_cpu_moe(qk_context *ctx, int workers, const qk_moe_args *a) {
    const int64_t n_slots = a->n_tokens * a->n_used, k = a->k;
    const int64_t x_rows = a->x_per_slot ? n_slots : a->n_tokens;
    moe_job j = {.a = a, .dequant = qk_cpu_kernels(a->type).dequant, .row_bytes = qk_type_row_bytes(a->type, k)};
    j.out = a->kind == QK_MOE_WEIGHTED_SUM ? a->workspace : a->y;
    j.scratch_floats = (size_t)ROW_TILE * (size_t)k * (a->kind == QK_MOE_GATE_UP ? 2 : 1);

    /* everything is allocated before y is written: a failed call leaves it as it was */
    int64_t *first = malloc((size_t)(a->n_expert + 3) * sizeof *first);
    int32_t *slots = malloc((size_t)n_slots * sizeof *slots);
    float *x32 = NULL, *scratch = NULL;
    moe_item *items = NULL;
    size_t scratch_bytes;
    int ok = first && slots &&
             !__builtin_mul_overflow(j.scratch_floats * sizeof(float), (size_t)workers, &scratch_bytes) &&
             (scratch = malloc(scratch_bytes)) &&
             (a->x_type == QK_TYPE_F32 || (x32 = malloc((size_t)(x_rows * k) * sizeof(float))));
    int64_t n_items = 0;
    if (ok) {
        group_slots(a, first, slots);
        n_items = plan_items(a, first, NULL);
        ok = (items = malloc((size_t)(n_items ? n_items : 1) * sizeof *items)) != NULL;
    }
    if (ok) {
        plan_items(a, first, items);
        j.first = first, j.slots = slots, j.items = items, j.scratch = scratch;
        if (x32) {
            widen_job w = {qk_cpu_kernels(a->x_type).dequant, a->x, x32, k};
            qk_parallel_for(workers, x_rows, 1 + 65536 / k, widen_rows, &w);
        }
        j.x = x32 ? x32 : a->x;
        qk_parallel_for(workers, n_items, 1, multiply_items, &j);
        for (int64_t n = first[a->n_expert]; n < first[a->n_expert + 1]; n++)
            for (int64_t r = 0; r < a->m; r++) j.out[slots[n] * a->m + r] = NAN;
        if (a->kind == QK_MOE_WEIGHTED_SUM)
            qk_parallel_for(workers, a->n_tokens, 1 + 65536 / (a->m * a->n_used), sum_tokens, &j);
    }
    free(items);
    free(x32);
    free(scratch);
    free(slots);
    free(first);
    return ok ? QK_OK : qk_fail(ctx, QK_ERR_OUT_OF_MEMORY, "moe (cpu): cannot allocate its scratch memory");
}
