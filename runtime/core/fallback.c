/* Where an operation runs: on the context's device when it can, else on the cpu in its stead
 * (DESIGN.md, "Layers"), or nowhere, with QK_ERR_UNSUPPORTED, when the caller named the device or
 * the call is asynchronous. The device's backend says what it can (why_not); nothing here asks
 * which backend it is. */
#include <stdio.h>

#include "formats.h"
#include "internal.h"
#include "invariants.h"

int qk_backend_supports(const qk_backend *b, void *state, qk_op op, qk_type type) {
    char buf[160];
    return b->why_not(state, op, type, buf, sizeof buf) == NULL;
}

static const char *const op_verb[QK_OP_COUNT] = {"quantize", "dequantize", "run the MoE matmul on"};

/* "quantize IQ2_XXS", "run the MoE matmul on Q4_K weights" */
static void describe(char *buf, size_t n, qk_op op, qk_type type) {
    const qk_format *f = qk_format_of(type);
    snprintf(buf, n, "%s %s%s", op_verb[op], f ? f->name : "?", op == QK_OP_MOE ? " weights" : "");
}

/* The cpu backend's state, opened by the context's first fallback and kept until it is destroyed. */
static qk_status cpu_state(qk_context *ctx, void **state) {
    if (!ctx->cpu_state) {
        qk_status st = qk_backend_cpu.open(ctx, 0, &ctx->cpu_state);
        if (st != QK_OK) return st;
    }
    *state = ctx->cpu_state;
    return QK_OK;
}

qk_status qk_exec_choose(qk_context *ctx, qk_op op, qk_type type, int async, int announce, const char *what,
                         qk_exec *ex) {
    assert(op >= 0 && op < QK_OP_COUNT && qk_format_of(type));
    ex->backend = ctx->backend;
    ex->state = ctx->state;
    ex->fallback = 0;
    char buf[160], task[64];
    const char *why = ctx->backend->why_not(ctx->state, op, type, buf, sizeof buf);
    if (!why) return QK_OK;

    describe(task, sizeof task, op, type);
    if (ctx->backend == &qk_backend_cpu)
        return qk_fail(ctx, QK_ERR_UNSUPPORTED, "%s: the cpu cannot %s (%s)", what, task, why);
    if (ctx->named)
        return qk_fail(ctx, QK_ERR_UNSUPPORTED,
                       "%s: %s cannot %s (%s); it was named as the device, so the call does not fall back to the "
                       "cpu (a context on the automatic choice of device would)",
                       what, ctx->label, task, why);
    if (async)
        return qk_fail(ctx, QK_ERR_UNSUPPORTED,
                       "%s: %s cannot %s (%s), and an asynchronous call on the caller's stream cannot fall back "
                       "to the cpu",
                       what, ctx->label, task, why);
    void *state;
    qk_status st = cpu_state(ctx, &state);
    if (st != QK_OK) return st;
    char cpu_buf[160];
    const char *cpu_why = qk_backend_cpu.why_not(state, op, type, cpu_buf, sizeof cpu_buf);
    if (cpu_why)
        return qk_fail(ctx, QK_ERR_UNSUPPORTED, "%s: %s cannot %s (%s), nor can the cpu (%s)", what, ctx->label, task,
                       why, cpu_why);
    ex->backend = &qk_backend_cpu;
    ex->state = state;
    ex->fallback = 1;
    if (announce && ctx->notice && !ctx->noticed[op][type]) {
        char line[QK_ERROR_LEN];
        snprintf(line, sizeof line, "qkern: %s cannot %s (%s); running it on the cpu", ctx->label, task, why);
        ctx->notice(ctx->notice_user, line);
    }
    if (announce) ctx->noticed[op][type] = 1;
    return QK_OK;
}
