/* The MoE case matrix and its float64 reference (moe_harness.h). */
#include "moe_harness.h"

#include <stdarg.h>

#include "qk_float.h"

#define GAUSS_TABLE 65536
#define POISON_BITS 0xA5A5A5A5u

static void fail(moe_harness *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(moe_harness *h, const char *fmt, ...) {
    h->failures++;
    fprintf(stderr, "FAIL: ");
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (QK_TEST_SEED=0x%016" PRIx64 ")\n", h->seed);
}

static void *alloc_or_exit(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", bytes);
        exit(2);
    }
    return p;
}

void moe_harness_init(moe_harness *h, qk_context *dev, qk_context *cpu, uint64_t seed) {
    memset(h, 0, sizeof *h);
    h->dev = dev, h->cpu = cpu, h->seed = seed, h->rng.s = seed;
    h->precision = QK_MOE_PRECISION_DEFAULT;
    h->tolerance_quantized = MOE_TOLERANCE;
    h->gauss = alloc_or_exit(GAUSS_TABLE * sizeof(float));
    for (int i = 0; i < GAUSS_TABLE; i++) h->gauss[i] = tu_gauss(&h->rng);
}

void moe_harness_free(moe_harness *h) {
    free(h->gauss);
    h->gauss = NULL;
}

static float fast_gauss(moe_harness *h) { return h->gauss[tu_next(&h->rng) % GAUSS_TABLE]; }

static int64_t below(moe_harness *h, int64_t n) { return (int64_t)(tu_next(&h->rng) % (uint64_t)n); }

/* ---- weights ------------------------------------------------------------------------------- */

int moe_pool_make(moe_harness *h, qk_type type, int64_t k, int64_t rows, moe_pool *pool) {
    qk_type_info ti;
    qk_type_get_info(type, &ti);
    memset(pool, 0, sizeof *pool);
    pool->type = type, pool->k = k, pool->rows = rows, pool->row_bytes = qk_type_row_bytes(type, k);
    const size_t n = (size_t)(rows * k);
    float *src = alloc_or_exit(n * sizeof(float)), *im = alloc_or_exit((size_t)k * sizeof(float));
    /* weights of a trained layer: about 0.02, a few outliers; no zeros, never all equal */
    for (size_t i = 0; i < n; i++) src[i] = 0.02f * fast_gauss(h) * (below(h, 64) == 0 ? 8.0f : 1.0f) + 1e-6f;
    for (int64_t c = 0; c < k; c++) im[c] = (float)exp(1.5 * tu_gauss(&h->rng));
    pool->blocks = alloc_or_exit((size_t)rows * pool->row_bytes);
    pool->values = alloc_or_exit(n * sizeof(float));

    qk_quantize_desc q = qk_quantize_default_desc();
    q.type = type, q.rows = rows, q.cols = k;
    q.src = qk_host(src, n * sizeof(float));
    q.dst = qk_host(pool->blocks, (size_t)rows * pool->row_bytes);
    if (ti.uses_imatrix) q.imatrix = im, q.imatrix_len = k;
    qk_dequantize_desc d = qk_dequantize_default_desc();
    d.type = type, d.dst_type = QK_TYPE_F32, d.rows = rows, d.cols = k;
    d.src = q.dst;
    d.dst = qk_host(pool->values, n * sizeof(float));
    int ok = qk_quantize(h->cpu, &q) == QK_OK && qk_dequantize(h->cpu, &d) == QK_OK;
    if (!ok)
        fail(h, "%s: building %lld weight rows of %lld: %s", ti.name, (long long)rows, (long long)k,
             qk_last_error(h->cpu));
    free(src);
    free(im);
    if (!ok) moe_pool_free(pool);
    return ok;
}

void moe_pool_free(moe_pool *pool) {
    free(pool->blocks);
    free(pool->values);
    memset(pool, 0, sizeof *pool);
}

/* Distinct pool rows while the tensor has no more rows than the pool, a hash beyond. */
static void make_map(moe_harness *h, int32_t *map, int64_t n, int64_t pool_rows) {
    const uint64_t salt = tu_next(&h->rng);
    const int64_t offset = below(h, pool_rows);
    for (int64_t i = 0; i < n; i++) {
        uint64_t z = ((uint64_t)i ^ salt) * 0x9E3779B97F4A7C15ull;
        map[i] = (int32_t)(n <= pool_rows ? (i + offset) % pool_rows : (int64_t)((z >> 32) % (uint64_t)pool_rows));
    }
}

/* Rows [first, first + rows) of a tensor, assembled from its pool rows. */
static void assemble(const moe_pool *pool, const int32_t *map, int64_t first, int64_t rows, uint8_t *dst) {
    for (int64_t r = 0; r < rows; r++)
        memcpy(dst + (size_t)r * pool->row_bytes, pool->blocks + (size_t)map[first + r] * pool->row_bytes,
               pool->row_bytes);
}

int moe_weights_make(moe_harness *h, const moe_pool *pool, int64_t n_expert, int64_t m, int host_blocks,
                     moe_weights *w) {
    memset(w, 0, sizeof *w);
    const int64_t rows = n_expert * m;
    w->pool = pool, w->n_expert = n_expert, w->m = m;
    w->bytes = (size_t)rows * pool->row_bytes;
    w->map_w = alloc_or_exit((size_t)rows * sizeof(int32_t));
    w->map_up = alloc_or_exit((size_t)rows * sizeof(int32_t));
    make_map(h, w->map_w, rows, pool->rows);
    make_map(h, w->map_up, rows, pool->rows);
    if (!host_blocks) return 1;
    w->w = malloc(w->bytes);
    w->w_up = malloc(w->bytes);
    if (!w->w || !w->w_up) {
        fail(h, "%s: cannot allocate 2 x %zu bytes of expert weights", qk_type_name(pool->type), w->bytes);
        moe_weights_free(w);
        return 0;
    }
    assemble(pool, w->map_w, 0, rows, w->w);
    assemble(pool, w->map_up, 0, rows, w->w_up);
    return 1;
}

qk_buffer *moe_weights_upload(moe_harness *h, const moe_weights *w) {
    const moe_pool *pool = w->pool;
    const int64_t rows = w->n_expert * w->m, chunk = 1 + ((int64_t)16 << 20) / (int64_t)pool->row_bytes;
    uint8_t *staging = alloc_or_exit((size_t)chunk * pool->row_bytes);
    qk_buffer *buf = NULL;
    qk_status st = qk_buffer_create(h->dev, 2 * w->bytes, &buf);
    /* the two tensors are one run of rows: w's, then w_up's */
    for (int64_t r = 0, n; st == QK_OK && r < 2 * rows; r += n) {
        const int64_t end = r < rows ? rows : 2 * rows;
        n = end - r < chunk ? end - r : chunk;
        assemble(pool, r < rows ? w->map_w : w->map_up, r < rows ? r : r - rows, n, staging);
        st = qk_buffer_write(buf, (size_t)r * pool->row_bytes, staging, (size_t)n * pool->row_bytes);
    }
    free(staging);
    if (st != QK_OK) {
        fail(h, "%s: uploading 2 x %zu bytes of weights: %s", qk_type_name(pool->type), w->bytes,
             qk_last_error(h->dev));
        qk_buffer_destroy(buf);
        return NULL;
    }
    return buf;
}

void moe_weights_free(moe_weights *w) {
    free(w->w);
    free(w->w_up);
    free(w->map_w);
    free(w->map_up);
    memset(w, 0, sizeof *w);
}

/* ---- inputs -------------------------------------------------------------------------------- */

static void route(moe_harness *h, const moe_case *c, int32_t *ids) {
    const int64_t E = c->n_expert, U = c->n_used;
    /* MOE_FEW: a set of a few experts (never all of them, where there are more than n_used) */
    int64_t few = U + 2 < E - 1 ? U + 2 : (U < E ? E - 1 : E);
    int32_t *set = alloc_or_exit((size_t)E * sizeof *set);
    for (int64_t e = 0; e < E; e++) set[e] = (int32_t)e;
    for (int64_t e = E - 1; e > 0; e--) {
        int64_t o = below(h, e + 1);
        int32_t tmp = set[e];
        set[e] = set[o], set[o] = tmp;
    }
    const int32_t one = set[0];
    for (int64_t t = 0; t < c->n_tokens; t++) {
        int32_t *row = ids + t * U;
        const int64_t choices = c->routing == MOE_FEW ? few : E;
        for (int64_t s = 0; s < U; s++) {
            if (c->routing == MOE_ONE) {
                row[s] = one;
                continue;
            }
            /* distinct experts, as a router's top-k gives, unless there are too few */
            int64_t pick;
            int again;
            do {
                pick = below(h, choices);
                again = 0;
                for (int64_t p = 0; p < s && U <= choices; p++) again |= row[p] == set[pick];
            } while (again);
            row[s] = set[pick];
        }
    }
    free(set);
}

static void fill_values(moe_harness *h, qk_type t, void *dst, float *x32, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) {
        float v = scale * fast_gauss(h);
        if (t == QK_TYPE_F32) ((float *)dst)[i] = v;
        if (t == QK_TYPE_F16) qk_wr16((uint8_t *)dst + 2 * i, qk_f32_to_fp16(v)), v = qk_rdh((uint8_t *)dst + 2 * i);
        if (t == QK_TYPE_BF16)
            qk_wr16((uint8_t *)dst + 2 * i, qk_f32_to_bf16(v)), v = qk_bf16_to_f32(qk_rd16((uint8_t *)dst + 2 * i));
        x32[i] = v; /* the value the callee reads, widened exactly */
    }
}

/* n values (a multiple of 32) as the 8-bit paths round them (tu_round_8bit): d * code, in f32
 * (a rounding of 1e-7, far below the bounds). */
static void round_8bit(const float *x, float *x8, size_t n) {
    for (size_t g = 0; g < n; g += 32) {
        int q[32];
        const float d = tu_round_8bit(x + g, q);
        for (int i = 0; i < 32; i++) x8[g + i] = (float)q[i] * d;
    }
}

void moe_inputs_make(moe_harness *h, const moe_case *c, moe_inputs *in) {
    memset(in, 0, sizeof *in);
    in->c = *c;
    const int64_t slots = c->n_tokens * c->n_used, x_rows = c->x_per_slot ? slots : c->n_tokens;
    const size_t nx = (size_t)(x_rows * c->k), es = c->x_type == QK_TYPE_F32 ? 4 : 2;
    in->x_bytes = nx * es;
    in->x = alloc_or_exit(in->x_bytes);
    in->x32 = alloc_or_exit(nx * sizeof(float));
    fill_values(h, c->x_type, in->x, in->x32, nx, 1.0f);
    if (c->k % 32 == 0) {
        in->x8 = alloc_or_exit(nx * sizeof(float));
        round_8bit(in->x32, in->x8, nx);
    }
    if (c->routing != MOE_DENSE) {
        in->ids_bytes = (size_t)slots * sizeof(int32_t);
        in->ids = alloc_or_exit(in->ids_bytes);
        route(h, c, in->ids);
    }
    if (c->call == MOE_WEIGHTED_SUM) {
        in->router_bytes = (size_t)slots * sizeof(float);
        in->router = alloc_or_exit(in->router_bytes);
        /* positive, summing to about 1 per token, as after a softmax */
        for (int64_t i = 0; i < slots; i++) in->router[i] = (float)(0.1 + tu_u01(&h->rng)) / (float)c->n_used;
    }
    in->y_bytes = (size_t)(c->call == MOE_WEIGHTED_SUM ? c->n_tokens : slots) * (size_t)c->m * sizeof(float);
}

void moe_inputs_free(moe_inputs *in) {
    free(in->x);
    free(in->x32);
    free(in->x8);
    free(in->ids);
    free(in->router);
    memset(in, 0, sizeof *in);
}

qk_moe_desc moe_desc_for(const moe_inputs *in, const moe_weights *w, float *y) {
    const moe_case *c = &in->c;
    qk_moe_desc d = qk_moe_default_desc();
    d.type = w->pool->type, d.x_type = c->x_type;
    d.n_expert = c->n_expert, d.m = c->m, d.k = c->k;
    d.n_tokens = c->n_tokens, d.n_used = c->n_used, d.x_per_slot = c->x_per_slot;
    d.w = qk_host(w->w, w->bytes);
    if (c->call == MOE_GATE_UP) d.w_up = qk_host(w->w_up, w->bytes);
    d.x = qk_host(in->x, in->x_bytes);
    if (in->ids) d.ids = qk_host(in->ids, in->ids_bytes);
    if (in->router) d.router = qk_host(in->router, in->router_bytes);
    d.y = qk_host(y, in->y_bytes);
    return d;
}

qk_status moe_run(qk_context *ctx, moe_call call, const qk_moe_desc *d) {
    switch (call) {
    case MOE_MATMUL: return qk_moe_matmul(ctx, d);
    case MOE_GATE_UP: return qk_moe_gate_up(ctx, d);
    case MOE_WEIGHTED_SUM: return qk_moe_weighted_sum(ctx, d);
    }
    return QK_ERR_INVALID_ARG;
}

/* ---- the reference ------------------------------------------------------------------------- */

static const char *const call_name[] = {"matmul", "gate_up", "weighted_sum"};
static const char *const routing_name[] = {"uniform", "few experts", "one expert", "dense"};

void moe_case_name(const moe_case *c, char *out, size_t n) {
    snprintf(out, n, "%s E=%lld m=%lld k=%lld T=%lld U=%lld x=%s x_per_slot=%d %s", call_name[c->call],
             (long long)c->n_expert, (long long)c->m, (long long)c->k, (long long)c->n_tokens, (long long)c->n_used,
             qk_type_name(c->x_type), c->x_per_slot, routing_name[c->routing]);
}

static double dot64(const float *w, const float *x, int64_t k) {
    double acc = 0;
    for (int64_t i = 0; i < k; i++) acc += (double)w[i] * (double)x[i];
    return acc;
}

static int64_t expert_at(const moe_inputs *in, int64_t slot) { return in->ids ? in->ids[slot] : 0; }

/* One slot's product at one row, of the activations xs (in->x32 or in->x8); NaN for an id out
 * of range. */
static double slot_ref(const moe_inputs *in, const float *xs, const moe_weights *w, int64_t slot, int64_t row) {
    const moe_case *c = &in->c;
    const int64_t e = expert_at(in, slot);
    if (e < 0 || e >= c->n_expert) return NAN;
    const float *x = xs + (c->x_per_slot ? slot : slot / c->n_used) * c->k;
    const int64_t k = c->k, wr = e * c->m + row;
    double g = dot64(w->pool->values + (size_t)w->map_w[wr] * (size_t)k, x, k);
    if (c->call != MOE_GATE_UP) return g;
    return g / (1.0 + exp(-g)) * dot64(w->pool->values + (size_t)w->map_up[wr] * (size_t)k, x, k);
}

/* The reference at output row o (a slot, or a token for the weighted sum), row `row`. */
static double output_ref(const moe_inputs *in, const float *xs, const moe_weights *w, int64_t o, int64_t row) {
    const moe_case *c = &in->c;
    if (c->call != MOE_WEIGHTED_SUM) return slot_ref(in, xs, w, o, row);
    double sum = 0;
    for (int64_t s = 0; s < c->n_used; s++)
        sum += (double)in->router[o * c->n_used + s] * slot_ref(in, xs, w, o * c->n_used + s, row);
    return sum;
}

static int output_expects_nan(const moe_inputs *in, int64_t o) {
    const moe_case *c = &in->c;
    const int64_t first = c->call == MOE_WEIGHTED_SUM ? o * c->n_used : o,
                  n = c->call == MOE_WEIGHTED_SUM ? c->n_used : 1;
    for (int64_t s = first; s < first + n; s++)
        if (expert_at(in, s) < 0 || expert_at(in, s) >= c->n_expert) return 1;
    return 0;
}

/* "token 3, slot 2, row 17" (no slot for the weighted sum's outputs) */
static void where(const moe_case *c, int64_t o, int64_t row, char *out, size_t n) {
    if (c->call == MOE_WEIGHTED_SUM)
        snprintf(out, n, "token %lld, row %lld", (long long)o, (long long)row);
    else
        snprintf(out, n, "token %lld, slot %lld, row %lld", (long long)(o / c->n_used), (long long)(o % c->n_used),
                 (long long)row);
}

double moe_check(moe_harness *h, const moe_inputs *in, const moe_weights *w, const float *y, int64_t budget,
                 const char *label) {
    const moe_case *c = &in->c;
    const int64_t outs = c->call == MOE_WEIGHTED_SUM ? c->n_tokens : c->n_tokens * c->n_used, m = c->m;
    char name[160], at[96];
    moe_case_name(c, name, sizeof name);
    const char *type = qk_type_name(w->pool->type);
    const int before = h->failures;

    /* every element: written, finite (NaN exactly where an id is out of range) */
    for (int64_t o = 0; o < outs && h->failures == before; o++) {
        const int nan_expected = output_expects_nan(in, o);
        for (int64_t r = 0; r < m; r++) {
            const float v = y[o * m + r];
            if (qk_f32_bits(v) == POISON_BITS || (nan_expected ? !isnan(v) : !isfinite(v))) {
                where(c, o, r, at, sizeof at);
                fail(h, "%s %s %s: %s: y = %g (0x%08x)%s", label, type, name, at, v, qk_f32_bits(v),
                     qk_f32_bits(v) == POISON_BITS ? ", never written"
                     : nan_expected                ? ", expected NaN (id out of range)"
                                                   : ", not finite");
                break;
            }
        }
    }

    /* the reference, in full or at a few random rows of every output row */
    const int64_t dots_per_output = (c->call == MOE_GATE_UP ? 2 : 1) * (c->call == MOE_WEIGHTED_SUM ? c->n_used : 1);
    int64_t rows_per_output = budget / (outs * dots_per_output * c->k);
    const int all_rows = rows_per_output >= m;
    if (rows_per_output < 1) rows_per_output = 1;
    if (rows_per_output > m) rows_per_output = m;
    qk_type_info ti;
    qk_type_get_info(w->pool->type, &ti);
    /* an 8-bit path may have run: its own reference too (x8) */
    const int q8 = ti.is_quantized && h->precision == QK_MOE_PRECISION_DEFAULT &&
                   h->tolerance_quantized > MOE_TOLERANCE && in->x8 != NULL;
    double err2 = 0, ref2 = 0, err2_q8 = 0, ref2_q8 = 0, worst = -1;
    int64_t worst_o = 0, worst_r = 0, checked = 0;
    float worst_y = 0;
    double worst_ref = 0;
    for (int64_t o = 0; o < outs; o++) {
        if (output_expects_nan(in, o)) continue;
        for (int64_t j = 0; j < rows_per_output; j++) {
            const int64_t r = all_rows ? j : below(h, m);
            const double ref = output_ref(in, in->x32, w, o, r), d = (double)y[o * m + r] - ref;
            err2 += d * d;
            ref2 += ref * ref;
            checked++;
            if (!(fabs(d) <= worst)) worst = fabs(d), worst_o = o, worst_r = r, worst_y = y[o * m + r], worst_ref = ref;
            if (q8) {
                const double ref8 = output_ref(in, in->x8, w, o, r), d8 = (double)y[o * m + r] - ref8;
                err2_q8 += d8 * d8;
                ref2_q8 += ref8 * ref8;
            }
        }
    }
    const double rel = ref2 > 0 ? sqrt(err2 / ref2) : (err2 > 0 ? INFINITY : 0);
    const double rel_q8 = ref2_q8 > 0 ? sqrt(err2_q8 / ref2_q8) : (err2_q8 > 0 ? INFINITY : 0);
    if (q8) {
        /* the path computed what it should: the exact reference (no 8-bit rounding) or the
         * rounded activations' one, within MOE_TOLERANCE; and the rounding costs at most
         * MOE_TOLERANCE_8BIT where enough outputs and roundings are checked for that to be a
         * measure */
        if (!(rel <= MOE_TOLERANCE || rel_q8 <= MOE_TOLERANCE))
            fail(h,
                 "%s %s %s: relative error %.3g against the reference, %.3g against the reference of the activations "
                 "rounded to 8 bits: both > %g",
                 label, type, name, rel, rel_q8, MOE_TOLERANCE);
        const int64_t x_rows = c->x_per_slot ? c->n_tokens * c->n_used : c->n_tokens;
        if (!(rel <= h->tolerance_quantized) && checked >= MOE_8BIT_MIN_OUTPUTS &&
            x_rows * (c->k / 32) >= MOE_8BIT_MIN_BLOCKS) {
            where(c, worst_o, worst_r, at, sizeof at);
            fail(h, "%s %s %s: relative error %.3g > %g over %lld outputs; worst at %s: y = %.9g, reference %.9g",
                 label, type, name, rel, h->tolerance_quantized, (long long)checked, at, worst_y, worst_ref);
        }
        return rel;
    }
    if (!(rel <= MOE_TOLERANCE)) {
        where(c, worst_o, worst_r, at, sizeof at);
        fail(h, "%s %s %s: relative error %.3g > %g; worst at %s: y = %.9g, reference %.9g", label, type, name, rel,
             MOE_TOLERANCE, at, worst_y, worst_ref);
    }
    return rel;
}

/* ---- the case matrix ----------------------------------------------------------------------- */

typedef struct matrix_case {
    moe_level level;       /* the lowest level that runs it */
    int sample_types_only; /* at MOE_LEVEL_UNIT, only for unit_sample_types (model shapes are slow on a CI CPU) */
    moe_case c;
} matrix_case;

#define CASE(level, sample, call, E, m, k, T, U, x, per_slot, routing)                                                 \
    {                                                                                                                  \
        MOE_LEVEL_##level, sample, { MOE_##call, E, m, k, T, U, QK_TYPE_##x, per_slot, MOE_##routing }                 \
    }

/* k is rounded up to the weight type's block size. Cases of one weight shape are adjacent: the
 * weights are built and uploaded once per run of them. Across the table, each entry point meets
 * each activation type and both x_per_slot forms. */
static const matrix_case matrix[] = {
    /* small and ragged: every type, every level */
    CASE(UNIT, 0, MATMUL, 8, 33, 320, 1, 2, F32, 0, UNIFORM),
    CASE(UNIT, 0, GATE_UP, 16, 7, 96, 3, 4, F16, 0, UNIFORM),
    CASE(UNIT, 0, WEIGHTED_SUM, 6, 100, 320, 7, 6, BF16, 1, UNIFORM), /* every expert in every token */
    CASE(UNIT, 0, MATMUL, 64, 40, 96, 31, 8, BF16, 1, FEW),           /* most experts get no token */
    CASE(UNIT, 0, MATMUL, 4, 17, 1000, 8, 1, F32, 0, ONE),            /* every token on one expert */
    CASE(UNIT, 0, GATE_UP, 1, 50, 320, 64, 1, F16, 0, DENSE),         /* ids empty */
    CASE(UNIT, 0, WEIGHTED_SUM, 32, 24, 96, 64, 16, F32, 1, UNIFORM),
    CASE(UNIT, 0, MATMUL, 3, 1, 96, 2, 3, F16, 0, UNIFORM), /* one row */
    CASE(UNIT, 0, GATE_UP, 8, 65, 320, 2, 5, BF16, 1, FEW),
    CASE(UNIT, 0, WEIGHTED_SUM, 1, 9, 96, 3, 2, F16, 0, UNIFORM), /* one expert, ids given: slots repeat it */
    CASE(UNIT, 0, WEIGHTED_SUM, 5, 31, 1000, 64, 3, BF16, 0, ONE),
    /* ragged shapes with many tokens per expert (the tiled path on a GPU) */
    CASE(GPU, 0, MATMUL, 8, 100, 1000, 127, 2, F16, 0, UNIFORM),
    CASE(GPU, 0, GATE_UP, 4, 257, 320, 512, 2, BF16, 0, FEW),
    CASE(GPU, 0, WEIGHTED_SUM, 16, 72, 320, 512, 4, F32, 1, UNIFORM),
    CASE(FULL, 0, MATMUL, 3, 130, 1000, 2048, 1, F32, 0, UNIFORM),
    /* Qwen3.5-35B-A3B gate and up: 256 experts of 512 x 2048, 8 used */
    CASE(UNIT, 1, GATE_UP, 256, 512, 2048, 2, 8, F32, 0, UNIFORM),
    CASE(GPU, 0, GATE_UP, 256, 512, 2048, 1, 8, F16, 0, UNIFORM),
    CASE(GPU, 0, GATE_UP, 256, 512, 2048, 8, 8, BF16, 0, UNIFORM),
    CASE(GPU, 0, GATE_UP, 256, 512, 2048, 512, 8, F32, 0, UNIFORM),
    CASE(GPU, 0, MATMUL, 256, 512, 2048, 64, 8, F16, 0, FEW),
    CASE(FULL, 0, GATE_UP, 256, 512, 2048, 3, 8, BF16, 0, UNIFORM),
    CASE(FULL, 0, GATE_UP, 256, 512, 2048, 7, 8, F16, 0, UNIFORM),
    CASE(FULL, 0, GATE_UP, 256, 512, 2048, 31, 8, BF16, 0, UNIFORM),
    CASE(FULL, 0, GATE_UP, 256, 512, 2048, 64, 8, F32, 0, UNIFORM),
    CASE(FULL, 0, GATE_UP, 256, 512, 2048, 127, 8, F16, 0, UNIFORM),
    CASE(FULL, 0, GATE_UP, 256, 512, 2048, 2048, 8, BF16, 0, UNIFORM),
    CASE(FULL, 0, MATMUL, 256, 512, 2048, 512, 8, F16, 0, ONE), /* 4096 slots on one expert */
    CASE(FULL, 0, MATMUL, 256, 512, 2048, 2048, 8, F32, 0, FEW),
    CASE(FULL, 0, MATMUL, 256, 512, 2048, 31, 16, BF16, 0, UNIFORM),
    /* its down projection: 256 experts of 2048 x 512, one input per slot */
    CASE(GPU, 0, WEIGHTED_SUM, 256, 2048, 512, 1, 8, F32, 1, UNIFORM),
    CASE(GPU, 0, WEIGHTED_SUM, 256, 2048, 512, 512, 8, F16, 1, UNIFORM),
    CASE(GPU, 0, MATMUL, 256, 2048, 512, 8, 8, BF16, 1, UNIFORM),
    CASE(FULL, 0, WEIGHTED_SUM, 256, 2048, 512, 2, 8, BF16, 1, UNIFORM),
    CASE(FULL, 0, WEIGHTED_SUM, 256, 2048, 512, 3, 8, F16, 1, UNIFORM),
    CASE(FULL, 0, WEIGHTED_SUM, 256, 2048, 512, 7, 8, F32, 1, UNIFORM),
    CASE(FULL, 0, WEIGHTED_SUM, 256, 2048, 512, 8, 8, BF16, 1, UNIFORM),
    CASE(FULL, 0, WEIGHTED_SUM, 256, 2048, 512, 31, 8, F16, 1, UNIFORM),
    CASE(FULL, 0, WEIGHTED_SUM, 256, 2048, 512, 64, 8, F32, 1, UNIFORM),
    CASE(FULL, 0, WEIGHTED_SUM, 256, 2048, 512, 127, 8, BF16, 1, UNIFORM),
    CASE(FULL, 0, WEIGHTED_SUM, 256, 2048, 512, 2048, 8, F16, 1, UNIFORM),
    CASE(FULL, 0, WEIGHTED_SUM, 256, 2048, 512, 64, 8, BF16, 0, FEW),
    CASE(FULL, 0, MATMUL, 256, 2048, 512, 2048, 8, F32, 1, UNIFORM),
    /* the shared expert (a dense matrix: one expert, ids empty), gate/up then down */
    CASE(UNIT, 1, GATE_UP, 1, 512, 2048, 1, 1, F32, 0, DENSE),
    CASE(GPU, 0, GATE_UP, 1, 512, 2048, 7, 1, F16, 0, DENSE),
    CASE(GPU, 0, GATE_UP, 1, 512, 2048, 512, 1, BF16, 0, DENSE),
    CASE(FULL, 0, GATE_UP, 1, 512, 2048, 2048, 1, F32, 0, DENSE),
    CASE(FULL, 0, MATMUL, 1, 512, 2048, 127, 1, F16, 0, DENSE),
    CASE(GPU, 0, MATMUL, 1, 2048, 512, 1, 1, BF16, 0, DENSE),
    CASE(GPU, 0, MATMUL, 1, 2048, 512, 127, 1, F32, 0, DENSE),
    CASE(FULL, 0, MATMUL, 1, 2048, 512, 2048, 1, F16, 0, DENSE),
};
#define N_MATRIX (int)(sizeof matrix / sizeof matrix[0])

static const qk_type unit_sample_types[] = {QK_TYPE_Q4_K, QK_TYPE_Q8_0, QK_TYPE_IQ4_XS};

/* Float weights at the model shapes would be gigabytes: they run on the smaller shapes only. */
#define MAX_WEIGHT_BYTES ((size_t)320 << 20)

static int64_t round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

static int runs_at(const matrix_case *mc, moe_level level, qk_type type) {
    if (mc->level > level) return 0;
    if (level != MOE_LEVEL_UNIT || !mc->sample_types_only) return 1;
    for (size_t i = 0; i < sizeof unit_sample_types / sizeof unit_sample_types[0]; i++)
        if (unit_sample_types[i] == type) return 1;
    return 0;
}

/* The worst relative error at each n_tokens, for one type. */
typedef struct worst_by_tokens {
    int n;
    int64_t tokens[32];
    double worst[32];
} worst_by_tokens;

static void note(worst_by_tokens *wt, int64_t tokens, double rel) {
    int i = 0;
    while (i < wt->n && wt->tokens[i] != tokens) i++;
    if (i == wt->n) {
        if (wt->n == 32) return;
        /* kept sorted by n_tokens */
        while (i > 0 && wt->tokens[i - 1] > tokens)
            wt->tokens[i] = wt->tokens[i - 1], wt->worst[i] = wt->worst[i - 1], i--;
        wt->tokens[i] = tokens, wt->worst[i] = -1, wt->n++;
    }
    if (!(rel <= wt->worst[i])) wt->worst[i] = rel;
}

/* The pools of one type, one per row length, built on first use. */
typedef struct pool_cache {
    int n;
    moe_pool pools[8];
} pool_cache;

static const moe_pool *pool_for(moe_harness *h, pool_cache *pc, qk_type type, int64_t k, int64_t rows) {
    for (int i = 0; i < pc->n; i++)
        if (pc->pools[i].k == k) return &pc->pools[i];
    if (pc->n == 8 || !moe_pool_make(h, type, k, rows, &pc->pools[pc->n])) return NULL;
    return &pc->pools[pc->n++];
}

/* Runs matrix[*i] and the cases after it that share its weight shape; advances *i past them. */
static void run_group(moe_harness *h, moe_level level, const qk_type_info *ti, pool_cache *pc, int *i,
                      worst_by_tokens *wt, int *cases_run) {
    const matrix_case *first = &matrix[*i];
    int end = *i;
    while (end < N_MATRIX && matrix[end].c.n_expert == first->c.n_expert && matrix[end].c.m == first->c.m &&
           matrix[end].c.k == first->c.k)
        end++;
    const int begin = *i;
    *i = end;
    int any = 0;
    for (int j = begin; j < end; j++) any |= runs_at(&matrix[j], level, ti->type);
    const int64_t k = round_up(first->c.k, ti->block_elems);
    if (!any || (size_t)(first->c.n_expert * first->c.m) * qk_type_row_bytes(ti->type, k) > MAX_WEIGHT_BYTES) return;

    const moe_pool *pool = pool_for(h, pc, ti->type, k, level == MOE_LEVEL_UNIT ? 128 : 512);
    moe_weights w;
    if (!pool || !moe_weights_make(h, pool, first->c.n_expert, first->c.m, 0, &w)) return;
    /* the weights live on the device, uploaded once for the group: w, then w_up */
    qk_buffer *buf = moe_weights_upload(h, &w);
    if (!buf) {
        moe_weights_free(&w);
        return;
    }

    for (int j = begin; j < end; j++) {
        if (!runs_at(&matrix[j], level, ti->type)) continue;
        moe_case c = matrix[j].c;
        c.k = k;
        moe_inputs in;
        moe_inputs_make(h, &c, &in);
        float *y = tu_poisoned(in.y_bytes);
        qk_moe_desc d = moe_desc_for(&in, &w, y);
        d.precision = h->precision;
        d.w = qk_buf(buf, 0, w.bytes);
        if (c.call == MOE_GATE_UP) d.w_up = qk_buf(buf, w.bytes, w.bytes);
        qk_status st = moe_run(h->dev, c.call, &d);
        char name[160];
        moe_case_name(&c, name, sizeof name);
        /* Every type of the format table has a MoE kernel on every backend: none may be missing.
         * Float weights are the one documented shape limit (CUDA's need k a multiple of 32): such
         * a case is skipped, saying so, and only such a case. */
        if (st == QK_ERR_UNSUPPORTED && !ti->is_quantized && c.k % 32) {
            printf("%-8s %s skipped: %s\n", ti->name, name, qk_last_error(h->dev));
        } else if (st != QK_OK) {
            fail(h, "%s %s: status %d: %s", ti->name, name, st, qk_last_error(h->dev));
        } else {
            note(wt, c.n_tokens, moe_check(h, &in, &w, y, MOE_CHECK_BUDGET, "matrix"));
            ++*cases_run;
        }
        free(y);
        moe_inputs_free(&in);
    }
    qk_buffer_destroy(buf);
    moe_weights_free(&w);
}

void moe_run_matrix(moe_harness *h, moe_level level) {
    for (int t = 0; t < qk_type_count(); t++) {
        qk_type_info ti;
        qk_type_get_info(qk_type_at(t), &ti);
        pool_cache pc = {0};
        worst_by_tokens wt = {0};
        int before = h->failures, cases_run = 0;
        for (int i = 0; i < N_MATRIX;) run_group(h, level, &ti, &pc, &i, &wt, &cases_run);
        for (int p = 0; p < pc.n; p++) moe_pool_free(&pc.pools[p]);
        if (!cases_run) continue;
        printf("%-8s %2d cases %s; worst relative error by n_tokens:", ti.name, cases_run,
               h->failures == before ? "ok" : "FAILED");
        for (int i = 0; i < wt.n; i++) printf(" %lld: %.1e", (long long)wt.tokens[i], wt.worst[i]);
        printf("\n");
        fflush(stdout);
    }
}
