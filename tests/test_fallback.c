/* What the device cannot do runs on the cpu, with one notice, when the device was chosen
 * automatically; when the caller named the device, the call fails with QK_ERR_UNSUPPORTED and
 * says why. On lavapipe (CI's Vulkan device) with the test hook QK_VK_DISABLE
 * (runtime/core/vulkan/vk_features.h), which makes the device as if it lacked a feature: float64
 * (the encoders' exact division) and subgroup shuffles (the MoE vector shader's reductions).
 *
 * The automatic choice passes over a software device such as lavapipe (the cpu is faster), so
 * the "automatic" contexts here are opened on vulkan:0 and then marked as chosen automatically
 * (qk_context.named, runtime/core/internal.h). Without a Vulkan device the test skips (77). */
#include <stddef.h>
#include <stdlib.h>

#include "internal.h"
#include "test_util.h"

#define SKIP   77
#define POISON 0xA5

#ifdef QK_HAVE_VULKAN
int qk_vk_validation_errors(char *first, size_t n); /* runtime/core/vulkan/vk_internal.h */
#endif

typedef struct notices {
    int count;
    char last[512];
} notices;

static void on_notice(void *user, const char *line) {
    notices *n = user;
    n->count++;
    snprintf(n->last, sizeof n->last, "%s", line);
}

/* A context on vulkan:0 that sees the device as QK_VK_DISABLE=`disable` makes it (NULL: as it
 * is); `automatic`: as if the automatic choice had picked it. */
static qk_context *open_vulkan(const char *disable, int automatic, notices *n) {
    if (disable)
        setenv("QK_VK_DISABLE", disable, 1);
    else
        unsetenv("QK_VK_DISABLE");
    qk_context_params p = qk_context_default_params();
    p.device = "vulkan:0";
    p.notice = on_notice;
    p.notice_user = n;
    qk_context *ctx = NULL;
    qk_status st = qk_context_create(&p, &ctx);
    unsetenv("QK_VK_DISABLE");
    CHECK(st == QK_OK, "vulkan:0 with QK_VK_DISABLE=%s: %s", disable ? disable : "", qk_last_error(NULL));
    if (ctx && automatic) ctx->named = 0;
    return ctx;
}

static qk_context *cpu;

static float *random_values(tu_rng *rng, size_t n, float scale, int positive) {
    float *x = tu_poisoned(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = positive ? (float)tu_u01(rng) * scale : scale * tu_gauss(rng);
    return x;
}

/* The first byte at which two results differ, as a message, or NULL. */
static const char *differs(const uint8_t *a, const uint8_t *b, size_t n) {
    static char msg[96];
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i]) {
            snprintf(msg, sizeof msg, "byte %zu: %02x, the cpu's %02x", i, a[i], b[i]);
            return msg;
        }
    return NULL;
}

/* A quantize call of rows x cols from x (with an imatrix) into dst. */
static qk_quantize_desc quantize_desc(qk_type type, int64_t rows, int64_t cols, qk_mem src, qk_mem dst,
                                      const float *imatrix) {
    qk_quantize_desc d = qk_quantize_default_desc();
    d.type = type, d.rows = rows, d.cols = cols;
    d.src = src, d.dst = dst;
    d.imatrix = imatrix, d.imatrix_len = imatrix ? cols : 0;
    return d;
}

/* supports() answers from the device's features: without float64 the encoders are unsupported
 * (and why_not says so), decoders and float conversions are not affected. */
static void test_supports_sees_the_device_features(void) {
    notices n = {0};
    qk_context *plain = open_vulkan(NULL, 0, &n), *no64 = open_vulkan("float64", 0, &n);
    if (!plain || !no64) return;
    char buf[160];
    const qk_backend *b = no64->backend;
    if (qk_backend_supports(b, plain->state, QK_OP_QUANTIZE, QK_TYPE_Q4_K))
        CHECK(!qk_backend_supports(b, no64->state, QK_OP_QUANTIZE, QK_TYPE_Q4_K), "Q4_K quantizes without float64");
    else
        printf("note: this device has no shaderFloat64 of its own\n");
    const char *why = b->why_not(no64->state, QK_OP_QUANTIZE, QK_TYPE_IQ2_XXS, buf, sizeof buf);
    CHECK(why && strstr(why, "shaderFloat64"), "IQ2_XXS without float64: %s", why ? why : "supported");
    CHECK(qk_backend_supports(b, no64->state, QK_OP_DEQUANTIZE, QK_TYPE_Q4_K),
          "Q4_K no longer dequantizes without float64");
    CHECK(qk_backend_supports(b, no64->state, QK_OP_QUANTIZE, QK_TYPE_F16), "F32 -> F16 conversion needs float64?");
    CHECK(qk_backend_supports(b, no64->state, QK_OP_MOE, QK_TYPE_Q4_K), "the MoE matmul needs float64?");
    CHECK(n.count == 0, "%d notices without any call", n.count);
    qk_context_destroy(plain);
    qk_context_destroy(no64);
    printf("supports sees the device's features: ok\n");
}

/* Named device: QK_ERR_UNSUPPORTED naming device, operation, type and the missing feature;
 * nothing written, no notice. */
static void test_named_device_refuses(tu_rng *rng) {
    notices n = {0};
    qk_context *ctx = open_vulkan("float64", 0, &n);
    if (!ctx) return;
    const int64_t rows = 4, cols = 256;
    const size_t dst_bytes = (size_t)rows * qk_type_row_bytes(QK_TYPE_IQ2_XXS, cols);
    float *x = random_values(rng, (size_t)(rows * cols), 0.02f, 0), *im = random_values(rng, cols, 1.0f, 1);
    uint8_t *dst = tu_poisoned(dst_bytes);
    qk_quantize_desc d =
        quantize_desc(QK_TYPE_IQ2_XXS, rows, cols, qk_host(x, (size_t)(rows * cols) * 4), qk_host(dst, dst_bytes), im);
    qk_status st = qk_quantize(ctx, &d);
    const char *msg = qk_last_error(ctx);
    CHECK(st == QK_ERR_UNSUPPORTED, "named vulkan:0 without float64: status %d (%s)", st, msg);
    CHECK(strstr(msg, "vulkan:0") && strstr(msg, "IQ2_XXS") && strstr(msg, "shaderFloat64") && strstr(msg, "named"),
          "message: %s", msg);
    int untouched = 1;
    for (size_t i = 0; i < dst_bytes; i++) untouched &= dst[i] == POISON;
    CHECK(untouched, "dst written by a refused call");
    CHECK(n.count == 0, "a refused call gave a notice: %s", n.last);
    qk_moe_desc md = qk_moe_default_desc();
    md.m = 16, md.k = 256, md.n_tokens = 1;
    size_t ws = 0;
    qk_context *no_shuffle = open_vulkan("subgroup_shuffle", 0, &n);
    if (no_shuffle) {
        st = qk_moe_workspace_size(no_shuffle, &md, &ws);
        CHECK(st == QK_ERR_UNSUPPORTED && strstr(qk_last_error(no_shuffle), "shuffle"),
              "MoE workspace query on a named device without shuffles: %d (%s)", st, qk_last_error(no_shuffle));
    }
    qk_context_destroy(no_shuffle);
    qk_context_destroy(ctx);
    free(x), free(im), free(dst);
    printf("a named device refuses: ok\n");
}

/* Automatic device: the cpu's bytes, one notice per (operation, type), operands in host memory
 * and in the device's buffers (copied to the host and back, the bytes around the output untouched). */
static void test_automatic_device_falls_back(tu_rng *rng) {
    notices n = {0};
    qk_context *ctx = open_vulkan("float64", 1, &n);
    if (!ctx) return;
    const int64_t rows = 6, cols = 512;
    const size_t src_bytes = (size_t)(rows * cols) * 4,
                 dst_bytes = (size_t)rows * qk_type_row_bytes(QK_TYPE_IQ2_XXS, cols);
    float *x = random_values(rng, (size_t)(rows * cols), 0.02f, 0), *im = random_values(rng, cols, 1.0f, 1);
    uint8_t *want = tu_poisoned(dst_bytes), *got = tu_poisoned(dst_bytes);
    qk_quantize_desc d =
        quantize_desc(QK_TYPE_IQ2_XXS, rows, cols, qk_host(x, src_bytes), qk_host(want, dst_bytes), im);
    CHECK(qk_quantize(cpu, &d) == QK_OK, "cpu: %s", qk_last_error(cpu));

    /* host memory */
    d.dst = qk_host(got, dst_bytes);
    qk_status st = qk_quantize(ctx, &d);
    CHECK(st == QK_OK, "automatic device without float64: %s", qk_last_error(ctx));
    const char *diff = differs(got, want, dst_bytes);
    CHECK(!diff, "host memory: IQ2_XXS differs from the cpu's at %s", diff);
    CHECK(n.count == 1, "%d notices after one fallback", n.count);
    CHECK(strstr(n.last, "qkern: vulkan:0 (") &&
              strstr(n.last, "cannot quantize IQ2_XXS (no shaderFloat64); running it on the cpu"),
          "notice: %s", n.last);
    CHECK(!strchr(n.last, '\n'), "the notice holds a newline: %s", n.last);
    printf("notice: %s\n", n.last);
    CHECK(!*qk_last_error(ctx), "an error message after a fallback that worked: %s", qk_last_error(ctx));

    /* buffers of the device, the output between poisoned guard bytes */
    const size_t guard = 64;
    qk_buffer *src_buf = NULL, *dst_buf = NULL;
    CHECK(qk_buffer_create(ctx, src_bytes, &src_buf) == QK_OK &&
              qk_buffer_create(ctx, dst_bytes + 2 * guard, &dst_buf) == QK_OK,
          "buffers: %s", qk_last_error(ctx));
    uint8_t *back = tu_poisoned(dst_bytes + 2 * guard);
    if (src_buf && dst_buf && qk_buffer_write(src_buf, 0, x, src_bytes) == QK_OK &&
        qk_buffer_write(dst_buf, 0, back, dst_bytes + 2 * guard) == QK_OK) {
        d.src = qk_buf(src_buf, 0, src_bytes);
        d.dst = qk_buf(dst_buf, guard, dst_bytes);
        st = qk_quantize(ctx, &d);
        CHECK(st == QK_OK, "buffers: %s", qk_last_error(ctx));
        CHECK(qk_buffer_read(dst_buf, 0, back, dst_bytes + 2 * guard) == QK_OK, "read back: %s", qk_last_error(ctx));
        diff = differs(back + guard, want, dst_bytes);
        CHECK(!diff, "device buffers: IQ2_XXS differs from the cpu's at %s", diff);
        int guards = 1;
        for (size_t i = 0; i < guard; i++) guards &= back[i] == POISON && back[guard + dst_bytes + i] == POISON;
        CHECK(guards, "bytes around the output were written");
    }
    CHECK(n.count == 1, "%d notices after a second fallback of the same operation and type", n.count);

    /* another type: its own notice */
    const size_t q4_bytes = (size_t)rows * qk_type_row_bytes(QK_TYPE_Q4_K, cols);
    uint8_t *q4_want = tu_poisoned(q4_bytes), *q4_got = tu_poisoned(q4_bytes);
    d = quantize_desc(QK_TYPE_Q4_K, rows, cols, qk_host(x, src_bytes), qk_host(q4_want, q4_bytes), im);
    CHECK(qk_quantize(cpu, &d) == QK_OK, "cpu: %s", qk_last_error(cpu));
    d.dst = qk_host(q4_got, q4_bytes);
    CHECK(qk_quantize(ctx, &d) == QK_OK, "Q4_K: %s", qk_last_error(ctx));
    diff = differs(q4_got, q4_want, q4_bytes);
    CHECK(!diff, "Q4_K differs from the cpu's at %s", diff);
    CHECK(n.count == 2 && strstr(n.last, "Q4_K"), "%d notices, the last: %s", n.count, n.last);

    /* what the device can do still runs there, silently */
    float *deq = tu_poisoned(src_bytes), *deq_cpu = tu_poisoned(src_bytes);
    qk_dequantize_desc dd = qk_dequantize_default_desc();
    dd.type = QK_TYPE_Q4_K, dd.rows = rows, dd.cols = cols;
    dd.src = qk_host(q4_want, q4_bytes);
    dd.dst = qk_host(deq, src_bytes);
    CHECK(qk_dequantize(ctx, &dd) == QK_OK, "dequantize on the device: %s", qk_last_error(ctx));
    dd.dst = qk_host(deq_cpu, src_bytes);
    CHECK(qk_dequantize(cpu, &dd) == QK_OK, "cpu: %s", qk_last_error(cpu));
    CHECK(!differs((uint8_t *)deq, (uint8_t *)deq_cpu, src_bytes), "dequantized values differ from the cpu's");
    CHECK(n.count == 2, "a call the device can do gave a notice: %s", n.last);

    qk_buffer_destroy(src_buf);
    qk_buffer_destroy(dst_buf);
    qk_context_destroy(ctx);
    free(x), free(im), free(want), free(got), free(back), free(q4_want), free(q4_got), free(deq), free(deq_cpu);
    printf("an automatic device falls back to the cpu: ok\n");
}

/* The MoE matmul and the weighted sum fall back too, on operands in the device's buffers; the
 * workspace query promises nothing of the device (the cpu uses scratch of its own). */
static void test_moe_falls_back(tu_rng *rng) {
    notices n = {0};
    qk_context *ctx = open_vulkan("subgroup_shuffle", 1, &n);
    if (!ctx) return;
    const int64_t n_expert = 4, m = 24, k = 256, n_tokens = 5, n_used = 2, slots = n_tokens * n_used;
    const size_t row_bytes = qk_type_row_bytes(QK_TYPE_Q4_K, k), w_bytes = (size_t)(n_expert * m) * row_bytes;
    float *wf = random_values(rng, (size_t)(n_expert * m * k), 0.05f, 0),
          *x = random_values(rng, (size_t)(n_tokens * k), 1.0f, 0);
    float *router = random_values(rng, (size_t)slots, 1.0f, 1);
    uint8_t *w = tu_poisoned(w_bytes);
    qk_quantize_desc q = quantize_desc(QK_TYPE_Q4_K, n_expert * m, k, qk_host(wf, (size_t)(n_expert * m * k) * 4),
                                       qk_host(w, w_bytes), NULL);
    CHECK(qk_quantize(cpu, &q) == QK_OK, "weights: %s", qk_last_error(cpu));
    int32_t ids[10];
    for (int64_t s = 0; s < slots; s++) ids[s] = (int32_t)((s * 3 + s / n_used) % n_expert);

    qk_moe_desc d = qk_moe_default_desc();
    d.type = QK_TYPE_Q4_K, d.n_expert = n_expert, d.m = m, d.k = k, d.n_tokens = n_tokens, d.n_used = n_used;
    size_t ws = 1;
    CHECK(qk_moe_workspace_size(ctx, &d, &ws) == QK_OK && ws == 0, "workspace query on a fallback: %zu bytes (%s)", ws,
          qk_last_error(ctx));
    CHECK(n.count == 0, "the workspace query gave a notice: %s", n.last);

    const size_t x_bytes = (size_t)(n_tokens * k) * 4, ids_bytes = sizeof ids, y_bytes = (size_t)(slots * m) * 4;
    qk_buffer *buf = NULL;
    const size_t at_w = 0, at_x = w_bytes, at_ids = at_x + x_bytes, at_router = at_ids + ids_bytes,
                 at_y = at_router + (size_t)slots * 4;
    CHECK(qk_buffer_create(ctx, at_y + y_bytes, &buf) == QK_OK, "buffer: %s", qk_last_error(ctx));
    if (!buf || qk_buffer_write(buf, at_w, w, w_bytes) != QK_OK || qk_buffer_write(buf, at_x, x, x_bytes) != QK_OK ||
        qk_buffer_write(buf, at_ids, ids, ids_bytes) != QK_OK ||
        qk_buffer_write(buf, at_router, router, (size_t)slots * 4) != QK_OK) {
        CHECK(0, "uploads: %s", qk_last_error(ctx));
        qk_context_destroy(ctx);
        return;
    }
    for (int call = 0; call < 2; call++) {
        const int sum = call == 1;
        const size_t out_bytes = sum ? (size_t)(n_tokens * m) * 4 : y_bytes;
        float *want = tu_poisoned(out_bytes), *got = tu_poisoned(out_bytes);
        qk_moe_desc h = d;
        h.w = qk_host(w, w_bytes), h.x = qk_host(x, x_bytes), h.ids = qk_host(ids, ids_bytes);
        h.y = qk_host(want, out_bytes);
        if (sum) h.router = qk_host(router, (size_t)slots * 4);
        qk_status st = sum ? qk_moe_weighted_sum(cpu, &h) : qk_moe_matmul(cpu, &h);
        CHECK(st == QK_OK, "cpu: %s", qk_last_error(cpu));
        qk_moe_desc b = d;
        b.w = qk_buf(buf, at_w, w_bytes), b.x = qk_buf(buf, at_x, x_bytes), b.ids = qk_buf(buf, at_ids, ids_bytes);
        b.y = qk_buf(buf, at_y, out_bytes);
        if (sum) b.router = qk_buf(buf, at_router, (size_t)slots * 4);
        st = sum ? qk_moe_weighted_sum(ctx, &b) : qk_moe_matmul(ctx, &b);
        CHECK(st == QK_OK, "%s on an automatic device without shuffles: %s", sum ? "weighted sum" : "matmul",
              qk_last_error(ctx));
        CHECK(qk_buffer_read(buf, at_y, got, out_bytes) == QK_OK, "read back: %s", qk_last_error(ctx));
        const char *diff = differs((uint8_t *)got, (uint8_t *)want, out_bytes);
        CHECK(!diff, "%s differs from the cpu's at %s", sum ? "weighted sum" : "matmul", diff);
        free(want), free(got);
    }
    CHECK(n.count == 1 && strstr(n.last, "cannot run the MoE matmul on Q4_K weights (no subgroup shuffle"),
          "%d notices, the last: %s", n.count, n.last);
    printf("notice: %s\n", n.last);
    /* an id out of range is still refused, read from the device's buffer */
    ids[3] = (int32_t)n_expert;
    CHECK(qk_buffer_write(buf, at_ids, ids, ids_bytes) == QK_OK, "ids: %s", qk_last_error(ctx));
    qk_moe_desc b = d;
    b.w = qk_buf(buf, at_w, w_bytes), b.x = qk_buf(buf, at_x, x_bytes), b.ids = qk_buf(buf, at_ids, ids_bytes);
    b.y = qk_buf(buf, at_y, y_bytes);
    CHECK(qk_moe_matmul(ctx, &b) == QK_ERR_VALUE && strstr(qk_last_error(ctx), "ids[1][1]"),
          "an id out of range on a fallback: %s", qk_last_error(ctx));
    qk_buffer_destroy(buf);
    qk_context_destroy(ctx);
    free(wf), free(x), free(router), free(w);
    printf("the MoE matmul falls back to the cpu: ok\n");
}

/* A caller built against the struct before notice (its struct_size ends at n_threads) still
 * creates a context, with no notices; a smaller size is refused. */
static void test_params_of_an_earlier_version(void) {
    notices n = {0};
    qk_context_params p = qk_context_default_params();
    p.device = "cpu";
    p.notice = on_notice, p.notice_user = &n; /* beyond the earlier struct: must not be read */
    p.struct_size = offsetof(qk_context_params, notice);
    qk_context *ctx = NULL;
    CHECK(qk_context_create(&p, &ctx) == QK_OK, "struct_size %zu (0.1.0's): %s", p.struct_size, qk_last_error(NULL));
    CHECK(ctx && ctx->notice == NULL, "a field beyond the caller's struct_size was read");
    qk_context_destroy(ctx);
    p.struct_size = offsetof(qk_context_params, n_threads);
    ctx = NULL;
    CHECK(qk_context_create(&p, &ctx) == QK_ERR_INVALID_ARG, "struct_size %zu accepted", p.struct_size);
    qk_context_destroy(ctx);
    printf("params of an earlier version: ok\n");
}

int main(void) {
    tu_rng rng = {tu_seed()};
    unsetenv("QK_VK_DISABLE");
    test_params_of_an_earlier_version();
    int vulkan = 0;
    for (int i = 0; i < qk_device_count(); i++) {
        qk_device_info info;
        if (qk_device_get(i, &info) == QK_OK && info.kind == QK_DEVICE_VULKAN) vulkan = 1;
    }
    if (!vulkan) {
        printf("SKIPPED: no Vulkan device (this build has no Vulkan backend, or no driver or device is present)\n");
        return tu_failed ? 1 : SKIP;
    }
    qk_context_params p = qk_context_default_params();
    p.device = "cpu";
    if (qk_context_create(&p, &cpu) != QK_OK) {
        fprintf(stderr, "cpu: %s\n", qk_last_error(NULL));
        return 1;
    }
    test_supports_sees_the_device_features();
    test_named_device_refuses(&rng);
    test_automatic_device_falls_back(&rng);
    test_moe_falls_back(&rng);
    qk_context_destroy(cpu);
#ifdef QK_HAVE_VULKAN
    char first[512];
    const int errors = qk_vk_validation_errors(first, sizeof first);
    CHECK(errors == 0, "%d Vulkan validation errors, the first: %s", errors, first);
#endif
    return tu_finish();
}
