/* The exact arithmetic every Vulkan encoder is built on (shaders/common.glsl) gives the CPU's
 * bits: correctly rounded division and square root, the reference encoders' rounding rules
 * (nearest_int, lroundf), the fp16/bf16 conversions, and the subnormal-keeping products, sums
 * and compares (qk_mul, qk_add, qk_lt/le/eq), on random operands of every magnitude, subnormals
 * (a driver may flush them), near-ties (quotients of small integers, f16- and bf16-rounded
 * values), and special values. Skips (exit 77) without a Vulkan device. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "qk_float.h"
#include "test_util.h"
#include "vk_internal.h"

static float random_operand(tu_rng *r, int kind) {
    uint32_t u = (uint32_t)tu_next(r);
    switch (kind) {
    case 0: return qk_bits_f32(u & 0x7fffffffu) * ((u & 1) ? -1.0f : 1.0f); /* any bits (NaN, Inf, subnormal) */
    case 1: return (float)((int)(u % 2001) - 1000) / 8.0f;                  /* small, ties of rounding */
    case 2: return qk_fp16_to_f32((uint16_t)(u & 0x7bff));                  /* f16 values */
    case 3: return qk_bf16_to_f32((uint16_t)(u >> 16));                     /* bf16 values */
    case 4: return tu_gauss(r) * exp2f((float)((int)(u % 80) - 40));        /* wide normal range */
    default: return qk_bits_f32(u & 0x807fffffu);                           /* subnormal (or zero) */
    }
}

int main(void) {
    tu_rng rng = {tu_seed()};
    qk_context_params p = qk_context_default_params();
    p.device = "vulkan:0";
    qk_context *ctx;
    const unsigned fp_mode = tu_flush_subnormals_begin();
    const qk_status created = qk_context_create(&p, &ctx);
    tu_flush_subnormals_end(fp_mode);
    if (created != QK_OK) {
        printf("SKIPPED: %s\n", qk_last_error(NULL));
        return 77;
    }
    enum { N = 1 << 16 };
    uint32_t *in = malloc(8 * (size_t)N), *out = tu_poisoned(32 * (size_t)N);
    float *a = malloc(4 * (size_t)N), *b = malloc(4 * (size_t)N);
    for (int i = 0; i < N; i++) {
        a[i] = random_operand(&rng, i % 6);
        b[i] = random_operand(&rng, (i / 6) % 6);
        if (i % 7 == 0) b[i] = (float)(1 + i % 127);                    /* a / small integer: the encoders' scales */
        if (i % 11 == 0) a[i] = 127.0f, b[i] = random_operand(&rng, 2); /* 127 / amax */
        if (i % 13 == 0 && b[i] != 0.0f) a[i] = (float)((int)(tu_next(&rng) % 255) - 127) * 0.5f / b[i];
        in[2 * i] = qk_f32_bits(a[i]), in[2 * i + 1] = qk_f32_bits(b[i]);
    }
    void *src_mem = NULL, *dst_mem = NULL;
    qk_vk_state *s = ctx->state;
    CHECK(qk_vk_alloc(ctx, s, 8 * (size_t)N, &src_mem) == QK_OK &&
              qk_vk_alloc(ctx, s, 32 * (size_t)N, &dst_mem) == QK_OK,
          "alloc: %s", qk_last_error(ctx));
    CHECK(qk_vk_write(ctx, s, src_mem, 0, in, 8 * (size_t)N) == QK_OK, "write: %s", qk_last_error(ctx));
    qk_vk_arg args[2] = {{qk_vk_address(src_mem, 0), 8 * (uint64_t)N}, {qk_vk_address(dst_mem, 0), 32 * (uint64_t)N}};
    uint32_t n = N;
    CHECK(qk_vk_begin(ctx, s) == QK_OK, "begin: %s", qk_last_error(ctx));
    CHECK(qk_vk_dispatch(ctx, s, "arith_check", args, 2, &n, sizeof n, N / 64, 1, 1) == QK_OK, "dispatch: %s",
          qk_last_error(ctx));
    CHECK(qk_vk_submit(ctx, s, NULL) == QK_OK, "submit: %s", qk_last_error(ctx));
    CHECK(qk_vk_read(ctx, s, dst_mem, 0, out, 32 * (size_t)N) == QK_OK, "read: %s", qk_last_error(ctx));

    static const char *what[8] = {"a / b",
                                  "sqrtf(|a|)",
                                  "nearest_int(a*b)",
                                  "lroundf(a*b)",
                                  "fp16(a) | bf16(b)",
                                  "fp16 -> f32",
                                  "a + b (qk_add)",
                                  "a<b | a<=b | a==b (qk_lt...)"};
    int bad[8] = {0};
    for (int i = 0; i < N; i++) {
        float q = a[i] / b[i], r = sqrtf(fabsf(a[i])), ab = a[i] * b[i];
        const int ordered = !isnan(a[i]) && !isnan(b[i]);
        uint32_t want[8] = {qk_f32_bits(q),
                            qk_f32_bits(r),
                            0,
                            0,
                            (uint32_t)qk_f32_to_fp16(a[i]) | ((uint32_t)qk_f32_to_bf16(b[i]) << 16),
                            qk_f32_bits(qk_fp16_to_f32((uint16_t)(in[2 * i] & 0xffff))),
                            qk_f32_bits(a[i] + b[i]),
                            ordered ? (uint32_t)(a[i] < b[i]) | (uint32_t)(a[i] <= b[i]) << 1 |
                                          (uint32_t)(a[i] == b[i]) << 2
                                    : out[8 * i + 7]};
        int near = fabsf(ab) <= 4194303.0f; /* nearest_int's valid range */
        want[2] = near ? (uint32_t)qk_nearest_int(ab) : out[8 * i + 2];
        want[3] = (uint32_t)qk_lround_int(ab);
        for (int k = 0; k < 8; k++) {
            uint32_t got = out[8 * i + k];
            int both_nan = (k < 2 || k == 5 || k == 6) && isnan(qk_bits_f32(got)) && isnan(qk_bits_f32(want[k]));
            if (got != want[k] && !both_nan && bad[k]++ < 3)
                printf("%s: a = %a (0x%08x), b = %a (0x%08x): cpu 0x%08x, vulkan 0x%08x\n", what[k], a[i], in[2 * i],
                       b[i], in[2 * i + 1], want[k], got);
        }
    }
    for (int k = 0; k < 8; k++) CHECK(!bad[k], "%s differs from the CPU on %d of %d operands", what[k], bad[k], N);
    qk_vk_free(s, src_mem);
    qk_vk_free(s, dst_mem);
    qk_context_destroy(ctx);
    char first[512];
    int verrors = qk_vk_validation_errors(first, sizeof first);
    CHECK(verrors == 0, "the Vulkan validation layers reported %d errors; the first: %s", verrors, first);
    free(in), free(out), free(a), free(b);
    return tu_finish();
}
