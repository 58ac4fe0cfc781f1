/* The CPU backend: host memory, the reference kernels, rows spread over worker threads. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu_dispatch.h"
#include "formats.h"
#include "internal.h"
#include "invariants.h"
#include "moe_cpu.h"
#include "parallel.h"

/* A streaming queue (backend.h) that defers: quantize_queued records the step, wait_queue runs
 * it. Nothing overlaps on the CPU, but a caller that uses a step's output before waiting for it
 * reads stale bytes here just as it would from a GPU, so the streaming path is tested without
 * one. */
typedef struct cpu_queue {
    qk_quantize_args step;
    int busy;
} cpu_queue;

typedef struct cpu_state {
    int workers;
    cpu_queue queues[QK_QUEUES];
} cpu_state;

static int cpu_device_count(void) { return 1; }

static qk_status cpu_device_info(int index, qk_device_info *info) {
    if (index != 0) return QK_ERR_NO_DEVICE;
    memset(info, 0, sizeof *info);
    snprintf(info->id, sizeof info->id, "cpu");
    snprintf(info->name, sizeof info->name, "host CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[256];
        while (fgets(line, sizeof line, f)) {
            char *colon = strchr(line, ':');
            if (!strncmp(line, "model name", 10) && colon) {
                colon += 2;
                colon[strcspn(colon, "\n")] = 0;
                snprintf(info->name, sizeof info->name, "%s", colon);
                break;
            }
        }
        fclose(f);
    }
    info->kind = QK_DEVICE_CPU;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    info->memory_bytes = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    info->compute_units = qk_cpu_count();
    return QK_OK;
}

static qk_status cpu_open(qk_context *ctx, int index, void **state) {
    (void)index;
    cpu_state *s = calloc(1, sizeof *s);
    if (!s) return qk_fail(ctx, QK_ERR_OUT_OF_MEMORY, "cannot allocate the cpu backend");
    s->workers = ctx->n_threads > 0 ? ctx->n_threads : qk_cpu_count();
    *state = s;
    return QK_OK;
}

static void cpu_close(void *state) { free(state); }

/* Every row of the format table with a cpu column of Y, for every operation: the CPU reference
 * defines the results, and is the fallback of every other backend. */
static const char *cpu_why_not(void *state, qk_op op, qk_type type, char *buf, size_t n) {
    (void)state, (void)buf, (void)n;
    const qk_format *f = qk_format_of(type);
    if (!f || !(f->backends & QK_IMPL_CPU)) return "no cpu implementation in the format table";
    qk_cpu_kernel_pair k = qk_cpu_kernels(type);
    switch (op) {
    case QK_OP_QUANTIZE: return k.quant ? NULL : "no cpu quantizer for this type";
    case QK_OP_DEQUANTIZE:
    case QK_OP_MOE: /* weight rows are dequantized, then multiplied */
        return k.dequant ? NULL : "no cpu dequantizer for this type";
    }
    return "unknown operation";
}

static qk_status cpu_alloc(qk_context *ctx, void *state, size_t bytes, void **mem) {
    (void)state;
    *mem = malloc(bytes);
    return *mem ? QK_OK : qk_fail(ctx, QK_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes of host memory", bytes);
}

static void cpu_free(void *state, void *mem) {
    (void)state;
    free(mem);
}

static qk_status cpu_write(qk_context *ctx, void *state, void *mem, size_t offset, const void *src, size_t bytes) {
    (void)ctx, (void)state;
    memcpy((char *)mem + offset, src, bytes);
    return QK_OK;
}

static qk_status cpu_read(qk_context *ctx, void *state, const void *mem, size_t offset, void *dst, size_t bytes) {
    (void)ctx, (void)state;
    memcpy(dst, (const char *)mem + offset, bytes);
    return QK_OK;
}

static void *cpu_address(void *mem, size_t offset) { return (char *)mem + offset; }

/* ---- shared row machinery ----------------------------------------------------------------- */

/* Rows as f32: F32 rows are used in place, F16/BF16 rows are widened into scratch. */
static const float *row_as_f32(qk_type t, const void *base, int64_t row, int64_t cols, float *scratch) {
    if (t == QK_TYPE_F32) return (const float *)base + row * cols;
    const uint8_t *p = (const uint8_t *)base + (size_t)row * (size_t)cols * 2;
    qk_cpu_kernels(t).dequant(p, scratch, cols);
    return scratch;
}

typedef struct job {
    const qk_quantize_args *q;
    const qk_dequantize_args *d;
    qk_cpu_kernel_pair k;
    size_t row_bytes;
    float *scratch;         /* cols floats per worker */
    atomic_llong first_bad; /* lowest flat index of a non-finite input, or INT64_MAX */
} job;

static void scan_rows(void *arg, int worker, int64_t begin, int64_t end) {
    job *j = arg;
    const qk_quantize_args *a = j->q;
    float *tmp = j->scratch + (size_t)worker * (size_t)a->cols;
    for (int64_t r = begin; r < end; r++) {
        const float *x = row_as_f32(a->src_type, a->src, r, a->cols, tmp);
        for (int64_t c = 0; c < a->cols; c++) {
            if (isfinite(x[c])) continue;
            long long flat = r * a->cols + c, seen = atomic_load(&j->first_bad);
            while (flat < seen && !atomic_compare_exchange_weak(&j->first_bad, &seen, flat)) {
            }
            return;
        }
    }
}

static void quantize_rows(void *arg, int worker, int64_t begin, int64_t end) {
    job *j = arg;
    const qk_quantize_args *a = j->q;
    float *tmp = j->scratch + (size_t)worker * (size_t)a->cols;
    for (int64_t r = begin; r < end; r++) {
        const float *x = row_as_f32(a->src_type, a->src, r, a->cols, tmp);
        const float *qw = a->imatrix ? a->imatrix + (r / (a->rows / a->imatrix_mats)) * a->cols : NULL;
        j->k.quant(x, (uint8_t *)a->dst + (size_t)r * j->row_bytes, a->cols, qw);
    }
}

static void dequantize_rows(void *arg, int worker, int64_t begin, int64_t end) {
    job *j = arg;
    const qk_dequantize_args *a = j->d;
    const uint8_t *src = a->src;
    for (int64_t r = begin; r < end; r++) {
        const uint8_t *blocks = src + (size_t)r * j->row_bytes;
        if (a->dst_type == QK_TYPE_F32) {
            j->k.dequant(blocks, (float *)a->dst + r * a->cols, a->cols);
        } else {
            float *tmp = j->scratch + (size_t)worker * (size_t)a->cols;
            j->k.dequant(blocks, tmp, a->cols);
            uint8_t *out = (uint8_t *)a->dst + (size_t)r * (size_t)a->cols * 2;
            qk_cpu_kernels(a->dst_type).quant(tmp, out, a->cols, NULL);
        }
    }
}

/* Rows per chunk: about 64K values, so small rows are batched and large ones spread. */
static int64_t grain_for(int64_t cols) {
    int64_t g = 65536 / cols;
    return g < 1 ? 1 : g;
}

static qk_status alloc_scratch(qk_context *ctx, job *j, int workers, int64_t cols) {
    size_t n;
    if (__builtin_mul_overflow((size_t)workers, (size_t)cols, &n) || __builtin_mul_overflow(n, sizeof(float), &n) ||
        !(j->scratch = malloc(n)))
        return qk_fail(ctx, QK_ERR_OUT_OF_MEMORY, "cannot allocate %d rows of %lld floats of scratch", workers,
                       (long long)cols);
    return QK_OK;
}

static qk_status cpu_quantize(qk_context *ctx, void *state, const qk_quantize_args *a) {
    cpu_state *s = state;
    const qk_format *f = qk_format_of(a->type);
    job j = {.q = a, .k = qk_cpu_kernels(a->type), .row_bytes = qk_type_row_bytes(a->type, a->cols)};
    atomic_init(&j.first_bad, INT64_MAX);
    if (!qk_cpu_quant_prepare(a->type))
        return qk_fail(ctx, QK_ERR_OUT_OF_MEMORY, "cannot build the %s lattice tables", f->name);
    qk_status st = alloc_scratch(ctx, &j, s->workers, a->cols);
    if (st != QK_OK) return st;
    int64_t grain = grain_for(a->cols);
    /* every value is checked before any block is written: a failed call leaves dst as it was */
    qk_parallel_for(s->workers, a->rows, grain, scan_rows, &j);
    long long bad = atomic_load(&j.first_bad);
    if (bad != INT64_MAX) {
        int64_t r = bad / a->cols, c = bad % a->cols;
        float v = row_as_f32(a->src_type, a->src, r, a->cols, j.scratch)[c];
        free(j.scratch);
        return qk_fail(ctx, QK_ERR_VALUE, "input value at row %lld, column %lld is %s: cannot quantize to %s",
                       (long long)r, (long long)c, isnan(v) ? "NaN" : (v > 0 ? "+Inf" : "-Inf"), f->name);
    }
    qk_parallel_for(s->workers, a->rows, grain, quantize_rows, &j);
    free(j.scratch);
    return QK_OK;
}

static qk_status cpu_dequantize(qk_context *ctx, void *state, const qk_dequantize_args *a) {
    cpu_state *s = state;
    job j = {.d = a, .k = qk_cpu_kernels(a->type), .row_bytes = qk_type_row_bytes(a->type, a->cols)};
    if (a->dst_type != QK_TYPE_F32) {
        qk_status st = alloc_scratch(ctx, &j, s->workers, a->cols);
        if (st != QK_OK) return st;
    }
    qk_parallel_for(s->workers, a->rows, grain_for(a->cols), dequantize_rows, &j);
    free(j.scratch);
    return QK_OK;
}

/* One path; the weighted sum's per-slot products are its only scratch, and the other two calls
 * need none, so the query's promise is the weighted sum's. */
static void cpu_moe_plan(void *state, const qk_moe_args *a, qk_moe_plan *plan) {
    (void)state;
    plan->args = a;
    plan->workspace_query = qk_cpu_moe_partial_bytes(a);
    plan->workspace = a->kind == QK_MOE_WEIGHTED_SUM ? plan->workspace_query : 0;
}

static qk_status cpu_moe(qk_context *ctx, void *state, const qk_moe_args *a) {
    assert(a->plan && a->plan->args == a && (!a->plan->workspace || a->workspace));
    return qk_cpu_moe(ctx, ((cpu_state *)state)->workers, a);
}

/* ---- streaming ---------------------------------------------------------------------------- */

static qk_status cpu_quantize_queued(qk_context *ctx, void *state, int queue, const qk_quantize_args *a) {
    cpu_queue *q = &((cpu_state *)state)->queues[queue];
    if (q->busy) return qk_fail(ctx, QK_ERR_INVALID_ARG, "cpu: queue %d is busy: wait for it first", queue);
    q->step = *a;
    q->busy = 1;
    return QK_OK;
}

static qk_status cpu_wait_queue(qk_context *ctx, void *state, int queue) {
    cpu_queue *q = &((cpu_state *)state)->queues[queue];
    if (!q->busy) return QK_OK;
    q->busy = 0;
    return cpu_quantize(ctx, state, &q->step);
}

const qk_backend qk_backend_cpu = {
    .name = "cpu",
    .kind = QK_DEVICE_CPU,
    .host_memory = 1,
    .device_count = cpu_device_count,
    .device_info = cpu_device_info,
    .open = cpu_open,
    .close = cpu_close,
    .why_not = cpu_why_not,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .write = cpu_write,
    .read = cpu_read,
    .address = cpu_address,
    .quantize = cpu_quantize,
    .dequantize = cpu_dequantize,
    .moe_plan = cpu_moe_plan,
    .moe = cpu_moe,
    .host_alloc = cpu_alloc, /* plain host memory: nothing copies from it asynchronously */
    .host_free = cpu_free,
    .quantize_queued = cpu_quantize_queued,
    .wait_queue = cpu_wait_queue,
};
