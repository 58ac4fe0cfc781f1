/* The Vulkan backend's internals, shared by its files (runtime/vulkan).
 *
 * Memory. Every allocation is a VkBuffer with its own device memory; the backend hands the
 * runtime an address in a private address space (each buffer gets a disjoint range of it),
 * so the runtime's `void *` operands - a buffer's address plus a byte offset - work as they
 * do for CUDA. qk_vk_locate turns such an address back into (buffer, offset).
 *
 * Shaders. Every shader is a compute shader embedded as SPIR-V (shaders/, built by
 * CMakeLists.txt), looked up by name "<op>/<TYPE>" (e.g. "dequant/Q4_K", "moe_vec/IQ2_S")
 * or "<op>" for type-less ones. Bindings: set 0, binding 0 is always the format tables
 * (bound by the backend); bindings 1..QK_VK_MAX_BINDINGS-1 are the operands of a dispatch,
 * each a storage buffer. The push constants of every shader start with
 *     uint qk_off[QK_VK_MAX_BINDINGS];   (qk_off[i]: byte offset of the operand inside binding i)
 * because a binding's range must start at an aligned offset; the shader adds qk_off[i] to its
 * own offsets. The shader's own parameters follow (at most QK_VK_PARAM_BYTES).
 *
 * Work. An operation opens a batch, records dispatches (each followed by a compute-to-compute
 * memory barrier), and submits it, waiting for the result. */
#ifndef QK_VK_INTERNAL_H
#define QK_VK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

#define QK_VK_MAX_BINDINGS 8
#define QK_VK_PARAM_BYTES  96

typedef struct qk_vk_state qk_vk_state;

/* What the device offers, read at open; shader variants are picked from these. */
typedef struct qk_vk_features {
    int storage16, storage8;   /* 16- and 8-bit storage buffer access */
    int float16, int8;         /* arithmetic */
    int float64;               /* shaderFloat64: the encoders' exact division (common.glsl) */
    int denorm_preserve32;     /* shaderDenormPreserveFloat32: every pipeline is created keeping
                                  32-bit denormals (qk_vk_spirv_preserve_denorms), as the CPU does */
    int subgroup_size;         /* 0 if unknown */
    int subgroup_arith;        /* subgroupAdd etc. in compute */
    int integer_dot;           /* VK_KHR_shader_integer_dot_product */
    int coopmat_nv;            /* VK_NV_cooperative_matrix with 16x16x16 f16 -> f32 */
    uint32_t max_shared_bytes; /* maxComputeSharedMemorySize */
    uint64_t max_storage_range;
    int timestamps;      /* timestamp queries on the compute queue */
    double timestamp_ns; /* ns per tick */
    unsigned enabled;    /* the features a shader may need that the device has enabled (vk_features.h) */
} qk_vk_features;

/* Every field above reads as if the device lacked what the test hook QK_VK_DISABLE names
 * (vk_features.h): e.g. QK_VK_DISABLE=float64 makes every encoder that divides in float64
 * unsupported, as on a device without shaderFloat64. */
const qk_vk_features *qk_vk_features_of(const qk_vk_state *s);

/* Bytes one dispatch may address through one binding: under the device's storage range and
 * 2^31, so that every offset a shader computes fits 32 bits with room for the residual
 * offset; larger operands are cut into pieces (rows, blocks, experts). */
uint64_t qk_vk_binding_limit(const qk_vk_state *s);

/* The buffer and byte offset behind an operation's address; *avail is the bytes from there to
 * the end of the buffer. 0 if the address is not one of this context's. */
int qk_vk_locate(const qk_vk_state *s, const void *addr, void **vkbuffer, uint64_t *offset, uint64_t *avail);

/* One operand of a dispatch: `bytes` from the address `addr` (NULL: an unused binding). */
typedef struct qk_vk_arg {
    const void *addr;
    uint64_t bytes;
} qk_vk_arg;

/* Records one dispatch of shader `name` into the open batch: args bind to 1..n_args, `params`
 * (params_bytes <= QK_VK_PARAM_BYTES) follow qk_off in the push constants. QK_ERR_UNSUPPORTED
 * if no shader has that name; QK_ERR_BUFFER if an operand exceeds the device's storage range. */
qk_status qk_vk_dispatch(qk_context *ctx, qk_vk_state *s, const char *name, const qk_vk_arg *args, int n_args,
                         const void *params, size_t params_bytes, uint32_t groups_x, uint32_t groups_y,
                         uint32_t groups_z);
/* 1 if a shader of that name is embedded. */
int qk_vk_has_shader(const char *name);
/* NULL if this device can run shader `name` (embedded, and every feature its SPIR-V declares a
 * capability for enabled), else why not: "no shaderFloat64" (static or written to buf, n bytes). */
const char *qk_vk_shader_lacks(const qk_vk_state *s, const char *name, char *buf, size_t n);
/* The name of an operation's variant for a type, "<op>/<TYPE>", written to buf (QK_VK_NAME_LEN
 * bytes) and returned. */
#define QK_VK_NAME_LEN 48
const char *qk_vk_variant(char *buf, const char *op, qk_type type);

/* The address `bytes` past an operation's address (operands are addressed like memory). */
static inline const void *qk_vk_at(const void *addr, uint64_t bytes) { return (const char *)addr + bytes; }

/* A batch: begin, record, then submit and wait. *elapsed_ns (may be NULL) receives the
 * device time between begin and end from timestamp queries (0 where there are none). */
qk_status qk_vk_begin(qk_context *ctx, qk_vk_state *s);
qk_status qk_vk_submit(qk_context *ctx, qk_vk_state *s, double *elapsed_ns);

/* For benchmarks: between capture_begin and capture_end, every batch an operation opens joins
 * one submission (begin and submit do nothing), so many operations run back to back and
 * capture_end gives their device time. Operations must then be asynchronous (no reads back). */
qk_status qk_vk_capture_begin(qk_context *ctx, qk_vk_state *s);
qk_status qk_vk_capture_end(qk_context *ctx, qk_vk_state *s, double *elapsed_ns);

/* Device memory for the runtime's temporaries (scratch), addressed as above. */
qk_status qk_vk_alloc(qk_context *ctx, qk_vk_state *s, size_t bytes, void **mem);
void qk_vk_free(qk_vk_state *s, void *mem);
void *qk_vk_address(void *mem, size_t offset);
qk_status qk_vk_write(qk_context *ctx, qk_vk_state *s, void *mem, size_t offset, const void *src, size_t bytes);
qk_status qk_vk_read(qk_context *ctx, qk_vk_state *s, const void *mem, size_t offset, void *dst, size_t bytes);
/* Reads `bytes` at an operation's address (qk_vk_locate's kind). */
qk_status qk_vk_read_at(qk_context *ctx, qk_vk_state *s, const void *addr, void *dst, size_t bytes);

/* Errors the validation layers reported so far (with QK_VK_VALIDATION=1), and the first one. */
int qk_vk_validation_errors(char *first, size_t n);

/* moe_vulkan.c: the MoE hooks of the backend table. */
void qk_vk_moe_plan(void *state, const qk_moe_args *args, qk_moe_plan *plan);
qk_status qk_vk_moe(qk_context *ctx, void *state, const qk_moe_args *args);

#endif
