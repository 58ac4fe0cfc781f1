/* The Vulkan kernels' throughput on the first Vulkan device, timed with the device's own
 * timestamps around one submission of many back-to-back operations (qk_vulkan_capture_*), against
 * the copy bandwidth of the same run (a 1 GiB copy by a compute shader, bytes read + written;
 * vkCmdCopyBuffer on a compute queue runs at a third of that on an H100):
 *   dequantize: every type, 4096 x 14336 values to F16 (GB/s of the larger side; fraction =
 *               (input + output bytes) / time over the copy bandwidth);
 *   quantize:   every type from BF16 with an imatrix, 4096 x 4096, synchronous calls timed on
 *               the host (they include the NaN scan and the imatrix upload);
 *   moe_tg / moe_pp: qwen3.5-35b-a3b's expert FFN (256 experts, 8 used) gate/up 512x2048 and
 *               down 2048x512 at 1 and 512 tokens, uniform routing (us per op; fraction = time
 *               to move the touched expert weights at copy bandwidth / measured time).
 * Writes bench/results-style JSONL to stdout (one object per line) and a table to stderr.
 * Usage: qkern_bench_vulkan [DEVICE-NAME COMMIT] (QK_BENCH_TYPES=Q4_K,... limits the types).
 * Public API only: buffers, qk_dequantize / qk_quantize, and qkern_vulkan.h's captures, copy and
 * capturable MoE product. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qkern_vulkan.h"

static qk_context *ctx;
static const char *device_name = "unknown", *commit = "unknown";
static char date[32];
static double copy_gbs;

static int wanted(const char *name) {
    const char *list = getenv("QK_BENCH_TYPES");
    if (!list || !*list) return 1;
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)); p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || !p[n])) return 1;
    return 0;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t next(void) {
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return rng_state;
}

static qk_buffer *device_alloc(size_t bytes) {
    qk_buffer *b = NULL;
    if (qk_buffer_create(ctx, bytes, &b) != QK_OK) {
        fprintf(stderr, "bench_vulkan: cannot allocate %zu bytes: %s\n", bytes, qk_last_error(ctx));
        exit(1);
    }
    return b;
}

static qk_buffer *device_random(size_t bytes, int fp16_scales) {
    qk_buffer *mem = NULL;
    uint8_t *h = malloc(bytes);
    if (!h || qk_buffer_create(ctx, bytes, &mem) != QK_OK) {
        fprintf(stderr, "bench_vulkan: cannot allocate %zu bytes: %s\n", bytes, qk_last_error(ctx));
        exit(1);
    }
    for (size_t i = 0; i < bytes; i++) h[i] = (uint8_t)next();
    /* finite, moderate fp16 values everywhere a 16-bit field could sit (timing only) */
    for (size_t i = 1; fp16_scales && i < bytes; i += 2) h[i] &= 0x3b;
    qk_buffer_write(mem, 0, h, bytes);
    free(h);
    return mem;
}

static void emit(const char *op, const char *type, const char *shape, long tokens, double value, const char *unit,
                 double ceiling, const char *ceiling_unit, double fraction) {
    printf(
        "{\"device\": \"%s\", \"date\": \"%s\", \"commit\": \"%s\", \"backend\": \"vulkan\", \"op\": \"%s\", "
        "\"type\": \"%s\", \"shape\": \"%s\", \"tokens\": %ld, \"value\": %.4f, \"unit\": \"%s\", \"ceiling\": %.4f, "
        "\"ceiling_unit\": \"%s\", \"fraction\": %.4f}\n",
        device_name, date, commit, op, type, shape, tokens, value, unit, ceiling, ceiling_unit, fraction);
    fflush(stdout);
}

static void measure_copy(void) {
    const size_t bytes = (size_t)1 << 30;
    qk_buffer *a = device_alloc(bytes), *b = device_alloc(bytes);
    double ns = 0;
    for (int rep = 0; rep < 2; rep++) { /* the first warms up */
        qk_vulkan_capture_begin(ctx);
        for (int i = 0; i < 10; i++)
            if (qk_vulkan_copy(ctx, qk_buf(b, 0, bytes), qk_buf(a, 0, bytes), bytes) != QK_OK) {
                fprintf(stderr, "copy: %s\n", qk_last_error(ctx));
                exit(1);
            }
        qk_vulkan_capture_end(ctx, &ns);
    }
    copy_gbs = 2.0 * 10 * (double)bytes / ns;
    fprintf(stderr, "copy bandwidth (read + write): %.0f GB/s\n", copy_gbs);
    qk_buffer_destroy(a);
    qk_buffer_destroy(b);
}

static void bench_dequantize(const qk_type_info *f) {
    const int64_t rows = 4096, cols = 14336;
    size_t in = qk_type_row_bytes(f->type, cols) * (size_t)rows, out = (size_t)(rows * cols) * 2;
    qk_buffer *src = device_random(in, 1), *dst = device_alloc(out);
    qk_dequantize_desc a = qk_dequantize_default_desc();
    a.type = f->type, a.dst_type = QK_TYPE_F16, a.rows = rows, a.cols = cols;
    a.src = qk_buf(src, 0, in), a.dst = qk_buf(dst, 0, out);
    double ns = 0;
    const int reps = 20;
    for (int w = 0; w < 2; w++) {
        qk_vulkan_capture_begin(ctx);
        for (int i = 0; i < (w ? reps : 1); i++) qk_dequantize(ctx, &a);
        qk_vulkan_capture_end(ctx, &ns);
    }
    double t = ns / reps * 1e-9, gbs = (double)(in > out ? in : out) / t * 1e-9,
           frac = (double)(in + out) / t * 1e-9 / copy_gbs;
    emit("dequantize", f->name, "4096x14336 -> F16", 0, gbs, "GB/s", copy_gbs, "GB/s", frac);
    fprintf(stderr, "dequantize %-8s %8.1f us  %7.0f GB/s  %.2f of copy\n", f->name, t * 1e6, gbs, frac);
    qk_buffer_destroy(src);
    qk_buffer_destroy(dst);
}

static void bench_quantize(const qk_type_info *f) {
    const int64_t rows = 4096, cols = 4096;
    size_t in = (size_t)(rows * cols) * 2, out = qk_type_row_bytes(f->type, cols) * (size_t)rows;
    qk_buffer *src = device_random(in, 1), *dst = device_alloc(out);
    float *im = malloc((size_t)cols * sizeof(float));
    for (int64_t c = 0; c < cols; c++) im[c] = 0.5f + (float)(next() % 1000) / 500.0f;
    qk_quantize_desc a = qk_quantize_default_desc();
    a.type = f->type, a.src_type = QK_TYPE_BF16, a.rows = rows, a.cols = cols;
    a.src = qk_buf(src, 0, in), a.dst = qk_buf(dst, 0, out);
    a.imatrix = im, a.imatrix_len = cols;
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now();
        qk_status st = qk_quantize(ctx, &a);
        double t = now() - t0;
        if (st != QK_OK) {
            fprintf(stderr, "quantize %s: %s\n", f->name, qk_last_error(ctx));
            break;
        }
        if (t < best) best = t;
    }
    if (best < 1e30) {
        double gbs = (double)in / best * 1e-9;
        emit("quantize", f->name, "4096x4096 BF16 + imatrix", 0, gbs, "GB/s", copy_gbs, "GB/s",
             (double)(in + out) / best * 1e-9 / copy_gbs);
        fprintf(stderr, "quantize   %-8s %8.1f ms  %7.1f GB/s of input\n", f->name, best * 1e3, gbs);
    }
    free(im);
    qk_buffer_destroy(src);
    qk_buffer_destroy(dst);
}

/* One MoE op of qwen3.5-35b-a3b's expert FFN, timed over `reps` back-to-back calls. Types the
 * device has no MoE kernel for are skipped. */
static void bench_moe(const qk_type_info *f, int down, int64_t tokens) {
    const int64_t n_expert = 256, n_used = 8, m = down ? 2048 : 512, k = down ? 512 : 2048;
    if (k % f->block_elems) return;
    qk_moe_desc a = qk_moe_default_desc();
    a.type = f->type, a.x_type = QK_TYPE_F32;
    a.n_expert = n_expert, a.m = m, a.k = k, a.n_tokens = tokens, a.n_used = n_used, a.x_per_slot = down;
    size_t wsb = 0;
    qk_status st = qk_moe_workspace_size(ctx, &a, &wsb);
    if (st == QK_ERR_UNSUPPORTED) return;
    if (st != QK_OK) {
        fprintf(stderr, "moe %s: %s\n", f->name, qk_last_error(ctx));
        return;
    }
    size_t wbytes = qk_type_row_bytes(f->type, k) * (size_t)(m * n_expert);
    qk_buffer *w = device_random(wbytes, 1), *x, *ids, *y, *ws = NULL;
    size_t xbytes = (size_t)(tokens * k) * 4 * (down ? (size_t)n_used : 1);
    size_t idbytes = (size_t)(tokens * n_used) * 4, ybytes = (size_t)(tokens * n_used * m) * 4;
    float *xh = malloc(xbytes);
    for (size_t i = 0; i < xbytes / 4; i++) xh[i] = (float)((int)(next() % 2001) - 1000) / 1000.0f;
    int32_t *idh = malloc(idbytes);
    int touched[256] = {0}, n_touched = 0;
    for (int64_t t = 0; t < tokens; t++)
        for (int64_t s = 0; s < n_used; s++) {
            int e, dup;
            do {
                e = (int)(next() % (uint64_t)n_expert), dup = 0;
                for (int64_t q = 0; q < s; q++) dup |= idh[t * n_used + q] == e;
            } while (dup);
            idh[t * n_used + s] = e;
            if (!touched[e]++) n_touched++;
        }
    x = device_alloc(xbytes), ids = device_alloc(idbytes), y = device_alloc(ybytes);
    qk_buffer_write(x, 0, xh, xbytes);
    qk_buffer_write(ids, 0, idh, idbytes);
    if (wsb) ws = device_alloc(wsb);
    a.w = qk_buf(w, 0, wbytes), a.x = qk_buf(x, 0, xbytes), a.ids = qk_buf(ids, 0, idbytes);
    a.y = qk_buf(y, 0, ybytes);
    if (ws) a.workspace = qk_buf(ws, 0, wsb);
    const int reps = tokens == 1 ? 200 : 20;
    double ns = 0;
    for (int rep = 0; rep < 2 && st == QK_OK; rep++) {
        qk_vulkan_capture_begin(ctx);
        for (int i = 0; i < (rep ? reps : 2) && st == QK_OK; i++) st = qk_vulkan_moe_matmul_async(ctx, &a);
        qk_vulkan_capture_end(ctx, &ns);
    }
    char shape[64];
    snprintf(shape, sizeof shape, "qwen3.5-35b-a3b %s %lldx%lld", down ? "down" : "gate_up", (long long)m,
             (long long)k);
    if (st != QK_OK) {
        fprintf(stderr, "moe %s %s: %s\n", f->name, shape, qk_last_error(ctx));
    } else {
        double us = ns / reps * 1e-3;
        double bytes =
            (double)n_touched * (double)wbytes / (double)n_expert + (double)xbytes + (double)(tokens * n_used * m) * 4;
        double roof_us = bytes / (copy_gbs * 1e9 / 2) * 1e6; /* bytes that move once, at half the read+write rate */
        emit(tokens == 1 ? "moe_tg" : "moe_pp", f->name, shape, (long)tokens, us, "us", roof_us, "us", roof_us / us);
        fprintf(stderr, "moe %-8s %-32s %5lld tok %9.2f us  (%.2f of the memory roofline)\n", f->name, shape,
                (long long)tokens, us, roof_us / us);
    }
    free(xh), free(idh);
    qk_buffer_destroy(w), qk_buffer_destroy(x), qk_buffer_destroy(ids), qk_buffer_destroy(y);
    qk_buffer_destroy(ws);
}

int main(int argc, char **argv) {
    if (argc > 2) device_name = argv[1], commit = argv[2];
    time_t t = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d", gmtime(&t));
    qk_context_params p = qk_context_default_params();
    p.device = "vulkan:0";
    if (qk_context_create(&p, &ctx) != QK_OK) {
        fprintf(stderr, "SKIPPED: %s\n", qk_last_error(NULL));
        return 77;
    }
    qk_device_info di;
    qk_context_device(ctx, &di);
    fprintf(stderr, "device: %s\n", di.name);
    if (argc <= 2) device_name = di.name;
    measure_copy();
    const char *parts = getenv("QK_BENCH_PARTS"); /* any of dequantize,moe,quantize; default all */
    qk_type_info f;
    for (int i = 0; i < qk_type_count(); i++) {
        if (qk_type_get_info(qk_type_at(i), &f) != QK_OK || !f.is_quantized || !wanted(f.name)) continue;
        if (!parts || strstr(parts, "dequantize")) bench_dequantize(&f);
    }
    for (int i = 0; i < qk_type_count(); i++) {
        if (qk_type_get_info(qk_type_at(i), &f) != QK_OK || !wanted(f.name)) continue;
        if (!parts || strstr(parts, "moe"))
            for (int down = 0; down < 2; down++) { /* bench_moe skips types without a MoE kernel */
                bench_moe(&f, down, 1);
                bench_moe(&f, down, 512);
            }
    }
    for (int i = 0; i < qk_type_count(); i++) {
        if (qk_type_get_info(qk_type_at(i), &f) != QK_OK || !f.is_quantized || !wanted(f.name)) continue;
        if (!parts || strstr(parts, ",quantize") || !strncmp(parts, "quantize", 8)) bench_quantize(&f);
    }
    qk_context_destroy(ctx);
    return 0;
}
