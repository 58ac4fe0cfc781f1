/* qkern_vulkan.h: captures (many operations in one submission, timed on the device), the
 * compute copy that benchmarks compare against, and the MoE product without host-side reads,
 * which a capture needs. */
#include "qkern_vulkan.h"
#include "vk_internal.h"

#define COPY_GROUP  256u        /* copy.comp's local size */
#define COPY_GROUPS (132u * 16) /* grid-stride: enough groups to fill the largest GPUs */
#define COPY_ALIGN                                                                                                     \
    256u /* Vulkan's largest minStorageBufferOffsetAlignment: no residual                                              \
            offset, which copy.comp does not read */

static qk_status vulkan_of(qk_context *ctx, const char *what, qk_vk_state **s) {
    if (!ctx) return qk_fail(NULL, QK_ERR_INVALID_ARG, "%s: context is NULL", what);
    if (ctx->backend->kind != QK_DEVICE_VULKAN)
        return qk_fail(ctx, QK_ERR_UNSUPPORTED, "%s: the context is on %s, not a Vulkan device", what,
                       ctx->backend->name);
    *s = ctx->state;
    return QK_OK;
}

qk_status qk_vulkan_capture_begin(qk_context *ctx) {
    qk_vk_state *s = NULL;
    qk_status st = vulkan_of(ctx, "qk_vulkan_capture_begin", &s);
    return st != QK_OK ? st : qk_vk_capture_begin(ctx, s);
}

qk_status qk_vulkan_capture_end(qk_context *ctx, double *elapsed_ns) {
    if (elapsed_ns) *elapsed_ns = 0;
    qk_vk_state *s = NULL;
    qk_status st = vulkan_of(ctx, "qk_vulkan_capture_end", &s);
    return st != QK_OK ? st : qk_vk_capture_end(ctx, s, elapsed_ns);
}

/* An operand that must be a buffer of this context holding `need` bytes: its address. */
static qk_status buffer_operand(qk_context *ctx, const qk_mem *m, size_t need, const char *what, const void **addr) {
    if (!m->buffer || m->host || m->device)
        return qk_fail(ctx, QK_ERR_INVALID_ARG, "%s: a buffer of this context (qk_buf) is required", what);
    const qk_buffer *b = m->buffer;
    if (b->ctx != ctx) return qk_fail(ctx, QK_ERR_INVALID_ARG, "%s: buffer belongs to another context", what);
    if (m->offset > b->bytes || m->bytes > b->bytes - m->offset)
        return qk_fail(ctx, QK_ERR_BUFFER, "%s: range [%zu, +%zu) exceeds the buffer's %zu bytes", what, m->offset,
                       m->bytes, b->bytes);
    if (m->bytes < need) return qk_fail(ctx, QK_ERR_BUFFER, "%s: %zu bytes given, %zu needed", what, m->bytes, need);
    *addr = ctx->backend->address(b->mem, m->offset);
    return QK_OK;
}

qk_status qk_vulkan_copy(qk_context *ctx, qk_mem dst, qk_mem src, size_t bytes) {
    qk_vk_state *s = NULL;
    qk_status st = vulkan_of(ctx, "qk_vulkan_copy", &s);
    if (st != QK_OK) return st;
    if (bytes % 16 || src.offset % COPY_ALIGN || dst.offset % COPY_ALIGN)
        return qk_fail(ctx, QK_ERR_INVALID_ARG,
                       "qk_vulkan_copy: %zu bytes at offsets %zu -> %zu; bytes must be a multiple of 16, offsets of %u",
                       bytes, src.offset, dst.offset, COPY_ALIGN);
    const void *from, *to;
    if ((st = buffer_operand(ctx, &src, bytes, "qk_vulkan_copy: src", &from)) != QK_OK ||
        (st = buffer_operand(ctx, &dst, bytes, "qk_vulkan_copy: dst", &to)) != QK_OK)
        return st;
    /* pieces that one binding can address, each starting aligned */
    const uint64_t per = qk_vk_binding_limit(s) / COPY_ALIGN * COPY_ALIGN;
    if ((st = qk_vk_begin(ctx, s)) != QK_OK) return st;
    qk_status rec = QK_OK;
    for (uint64_t done = 0; done < bytes && rec == QK_OK; done += per) {
        const uint64_t m = bytes - done < per ? bytes - done : per;
        const uint32_t n = (uint32_t)(m / 16), needed = (n + COPY_GROUP - 1) / COPY_GROUP;
        qk_vk_arg args[2] = {{qk_vk_at(from, done), m}, {qk_vk_at(to, done), m}};
        rec = qk_vk_dispatch(ctx, s, "copy", args, 2, &n, sizeof n, needed < COPY_GROUPS ? needed : COPY_GROUPS, 1, 1);
    }
    st = qk_vk_submit(ctx, s, NULL); /* also closes a batch whose recording failed */
    if (rec != QK_OK) return rec;
    if (st == QK_OK) ctx->error[0] = 0;
    return st;
}

/* The asynchronous path of every MoE entry point (qk_moe_run): host memory refused, the
 * workspace required, the ids not read back; on Vulkan it records into the open batch or
 * capture, or runs and waits outside one. */
qk_status qk_vulkan_moe_matmul_async(qk_context *ctx, const qk_moe_desc *d) {
    qk_vk_state *s = NULL;
    qk_status st = vulkan_of(ctx, "qk_vulkan_moe_matmul_async", &s);
    return st != QK_OK ? st : qk_moe_run(ctx, d, QK_MOE_MATMUL, 1, NULL);
}
