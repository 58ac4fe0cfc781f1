/* qkern_vulkan.h - timing qkern's Vulkan kernels on the device's own clock.
 *
 *     #include "qkern_vulkan.h"
 *     double ns;
 *     qk_vulkan_capture_begin(ctx);                 // ctx on "vulkan:N"
 *     for (int i = 0; i < 100; i++) qk_dequantize(ctx, &d);   // d's src and dst: qk_buf()
 *     qk_vulkan_capture_end(ctx, &ns);              // device time of the 100 calls
 *
 * A synchronous call on a Vulkan context records its work, submits it and waits. Between
 * qk_vulkan_capture_begin and qk_vulkan_capture_end the calls only record: everything joins one
 * submission, made by capture_end, which measures it with the queue's timestamps. So the calls
 * in a capture run back to back, as an engine would issue them, and their host-side costs stay
 * out of the time. What a captured call may do follows from that: nothing of its work has run
 * when it returns, so it must read nothing back and stage nothing through host memory.
 * qk_dequantize on buffers of the context (qk_buf), qk_vulkan_copy and
 * qk_vulkan_moe_matmul_async qualify; qk_quantize (it scans its input for NaN on the host) and
 * the synchronous MoE calls (they check their ids on the host) do not, nor does any call with
 * host memory, and their results inside a capture are unspecified. */
#ifndef QKERN_VULKAN_H
#define QKERN_VULKAN_H

#include "qkern.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Starts a capture on a Vulkan context. QK_ERR_UNSUPPORTED on another device, QK_ERR_BACKEND
 * if a capture is already open. */
QK_API qk_status qk_vulkan_capture_begin(qk_context *ctx);
/* Submits everything recorded since capture_begin, waits for it, and stores its device time in
 * *elapsed_ns (may be NULL; 0 where the queue has no timestamps). */
QK_API qk_status qk_vulkan_capture_end(qk_context *ctx, double *elapsed_ns);

/* Copies `bytes` from src to dst, both buffers of the context (qk_buf), by a compute shader
 * moving 16 bytes per load and store as the kernels do: the bandwidth a benchmark compares its
 * kernels against. bytes a multiple of 16, each operand at a buffer offset that is a multiple
 * of 256; QK_ERR_INVALID_ARG or QK_ERR_BUFFER otherwise. */
QK_API qk_status qk_vulkan_copy(qk_context *ctx, qk_mem dst, qk_mem src, size_t bytes);

/* qk_moe_matmul under the contract of qkern_cuda.h's asynchronous calls, so that it can be
 * captured: every operand, the workspace included (qk_moe_workspace_size bytes; required when
 * that is not 0), is memory of the context's device (qk_buf), never host memory; the ids are
 * not checked on the host (a slot whose id is outside [0, n_expert) reads no weights and gets
 * NaN outputs); a type the device has no kernel for fails (QK_ERR_UNSUPPORTED) rather than
 * running on the cpu. Outside a capture it runs at once and waits. Other errors as
 * qk_moe_matmul. */
QK_API qk_status qk_vulkan_moe_matmul_async(qk_context *ctx, const qk_moe_desc *desc);

#ifdef __cplusplus
}
#endif

#endif
