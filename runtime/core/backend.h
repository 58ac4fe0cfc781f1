/* The backend interface: what a device can do, its memory, and the operations. A backend
 * is one static table of function pointers registered in context.c; code above this layer
 * asks it what it supports and never branches on which backend it is. */
#ifndef QK_BACKEND_H
#define QK_BACKEND_H

#include <stddef.h>

#include "qkern.h"

typedef enum qk_op { QK_OP_QUANTIZE, QK_OP_DEQUANTIZE, QK_OP_MOE } qk_op;
enum { QK_OP_COUNT = QK_OP_MOE + 1 };

/* Validated operands: every pointer is in the backend's own address space, every size has
 * been checked by the runtime. */
typedef struct qk_quantize_args {
    qk_type type, src_type;
    int64_t rows, cols;
    const void *src;
    void *dst;
    const float *imatrix; /* host memory (device memory if async), imatrix_mats * cols values, or NULL */
    int64_t imatrix_mats; /* groups of rows / imatrix vectors (1 = one for every row; 0 without) */
    int async;            /* enqueue on `stream` and return; the imatrix is then device memory */
    void *stream;
} qk_quantize_args;

typedef struct qk_dequantize_args {
    qk_type type, dst_type;
    int64_t rows, cols;
    const void *src;
    void *dst;
    int async; /* enqueue on `stream` and return */
    void *stream;
} qk_dequantize_args;

/* The three MoE entry points (qkern.h). */
typedef enum qk_moe_kind { QK_MOE_MATMUL, QK_MOE_GATE_UP, QK_MOE_WEIGHTED_SUM } qk_moe_kind;

typedef struct qk_moe_plan qk_moe_plan;

/* The one description of a MoE call: moe.c validates a qk_moe_desc into it once, the backend
 * plans it once (moe_plan) and runs it with that plan (moe). */
typedef struct qk_moe_args {
    qk_moe_kind kind;
    qk_type type, x_type;
    int64_t n_expert, m, k, n_tokens, n_used;
    int x_per_slot;
    int exact;            /* qk_moe_desc.precision is QK_MOE_PRECISION_EXACT: no 8-bit activations */
    const void *w, *w_up; /* w_up: QK_MOE_GATE_UP only */
    const void *x;
    const int32_t *ids;  /* NULL: every slot uses expert 0 (n_expert is 1) */
    const float *router; /* QK_MOE_WEIGHTED_SUM only */
    float *y;
    void *workspace; /* plan->workspace bytes (NULL when that is 0) */
    int async;       /* enqueue on `stream` and return */
    void *stream;
    const qk_moe_plan *plan; /* moe_plan's plan of this call (qk_moe_run makes it once) */
} qk_moe_args;

/* A backend's plan of one MoE call: which kernels run, with which tiles, and where their scratch
 * lies in the workspace. moe_plan makes it from the shapes of a validated description (its
 * pointers are not read); moe runs the call by it. The runtime reads the sizes; `own` holds the
 * backend's own plan struct (each backend checks at compile time that it fits). */
#define QK_MOE_PLAN_OWN_BYTES 256
struct qk_moe_plan {
    const qk_moe_args *args; /* the description it was made for: a launch must pass that one */
    size_t workspace;        /* scratch bytes this call uses */
    size_t workspace_query;  /* the most any of the three calls uses with these shapes, so that one
                                workspace serves all three: what qk_moe_workspace_size reports */
    union {
        max_align_t align;
        unsigned char bytes[QK_MOE_PLAN_OWN_BYTES];
    } own;
};

typedef struct qk_backend {
    const char *name; /* "cpu", "cuda", "vulkan": the prefix of device ids */
    qk_device_kind kind;
    int host_memory; /* 1 if its buffers are plain host memory */

    int (*device_count)(void);
    /* Optional: 1 if device `index` emulates a GPU on the host's cores (e.g. mesa's lavapipe),
     * so that the automatic choice of device passes it over for the cpu backend. */
    int (*is_software)(int index);
    qk_status (*device_info)(int index, qk_device_info *info);

    /* A per-context state for device `index`; errors go to the context's message. */
    qk_status (*open)(qk_context *ctx, int index, void **state);
    void (*close)(void *state);

    /* Whether this device can run `op` on `type`: NULL if it can, else why not, a short phrase for
     * messages ("no shaderFloat64", "no kernel for this type"), static or written to buf (n bytes).
     * It answers from the format table's column of this backend (qk_format.backends) and from the
     * device's features as open() found them. */
    const char *(*why_not)(void *state, qk_op op, qk_type type, char *buf, size_t n);

    qk_status (*alloc)(qk_context *ctx, void *state, size_t bytes, void **mem);
    void (*free)(void *state, void *mem);
    qk_status (*write)(qk_context *ctx, void *state, void *mem, size_t offset, const void *src, size_t bytes);
    qk_status (*read)(qk_context *ctx, void *state, const void *mem, size_t offset, void *dst, size_t bytes);
    /* The address of byte `offset` of `mem`, as the operations take it. */
    void *(*address)(void *mem, size_t offset);

    qk_status (*quantize)(qk_context *ctx, void *state, const qk_quantize_args *args);
    qk_status (*dequantize)(qk_context *ctx, void *state, const qk_dequantize_args *args);
    /* Optional: the error of a quantization that args describes and has just run (qkern.h:
     * qk_quantize_measure_ex), from its operands in device memory; weights (host, or NULL) as
     * args->imatrix with weights_mats groups, means (host, or NULL) laid out as weights. Without
     * it the core dequantizes through the backend and adds on the host. */
    qk_status (*quantize_error)(qk_context *ctx, void *state, const qk_quantize_args *args, const float *weights,
                                const float *means, int64_t weights_mats, qk_quantize_error *out);
    /* The plan of a MoE call (qk_moe_plan): once per call, from the shapes of args (its pointers
     * are not read). */
    void (*moe_plan)(void *state, const qk_moe_args *args, qk_moe_plan *plan);
    /* Runs a MoE call by args->plan. Ids are in range in a synchronous call; in an asynchronous
     * one an id out of range must not be read through (its slot's outputs become NaN). */
    qk_status (*moe)(qk_context *ctx, void *state, const qk_moe_args *args);

    /* Streaming (optional: all four or none). A file-sized quantize is a stream of steps whose
     * read, upload, kernel, download and write should overlap: two queues, each holding one
     * step at a time, let the host fill one step's pinned buffers while the device works on
     * the other's. host_alloc gives host memory the device copies from and to asynchronously
     * (page-locked). quantize_queued only enqueues: args' src and dst are host_alloc memory and
     * the imatrix host memory, all of which must stay valid and unchanged until wait_queue
     * returns; the queue must be idle (waited for). wait_queue waits for the queue's step and
     * returns its status, QK_ERR_VALUE naming row and column on a NaN/Inf input as quantize
     * does (dst then holds no result); an idle queue returns QK_OK at once. */
    qk_status (*host_alloc)(qk_context *ctx, void *state, size_t bytes, void **host);
    void (*host_free)(void *state, void *host);
    qk_status (*quantize_queued)(qk_context *ctx, void *state, int queue, const qk_quantize_args *args);
    qk_status (*wait_queue)(qk_context *ctx, void *state, int queue);
} qk_backend;

#define QK_QUEUES 2 /* queues of quantize_queued: one step in flight while the next is read */

/* 1 if the backend's device can run `op` on `type` (b->why_not gives no reason). */
int qk_backend_supports(const qk_backend *b, void *state, qk_op op, qk_type type);

extern const qk_backend qk_backend_cpu;
extern const qk_backend qk_backend_cuda;   /* built with QK_CUDA; no devices without a GPU/driver */
extern const qk_backend qk_backend_vulkan; /* built with QK_VULKAN; no devices without a loader/driver */

#endif
