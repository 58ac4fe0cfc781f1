/* Context internals shared by the runtime's files. */
#ifndef QK_INTERNAL_H
#define QK_INTERNAL_H

#include "backend.h"

#define QK_ERROR_LEN 512

struct qk_buffer {
    qk_context *ctx;
    void *mem;
    size_t bytes;
    qk_buffer *prev, *next; /* the context's list, so destroy can release what is left */
};

/* Where a context's device spent its time on work for the host, for qk_model_result_device:
 * copies from host to device memory, kernels (quantize, and measure's), copies back, in seconds,
 * and the copies' bytes. Synchronous calls are timed on the host around each (they return once
 * the device is done), the queued path by the backend's events on the device. All 0 for a device
 * that works in host memory (the cpu). */
typedef struct qk_device_times {
    double h2d, kernel, d2h;
    uint64_t h2d_bytes, d2h_bytes;
} qk_device_times;

struct qk_context {
    const qk_backend *backend;
    void *state;
    int device_index;
    int n_threads;
    /* The caller named the device (qk_context_params.device other than NULL, "" or "auto"): an
     * operation it cannot do then fails rather than falling back to the cpu. (The automatic choice
     * passes over software devices, so a test that wants its fallback on lavapipe clears this.) */
    int named;
    char label[96]; /* "vulkan:0 (llvmpipe)": the device in notices and messages */
    void (*notice)(void *user, const char *line);
    void *notice_user;
    unsigned char noticed[QK_OP_COUNT][QK_TYPE_ID_LIMIT]; /* fallbacks announced, by (op, type) */
    void *cpu_state; /* the cpu backend's state for fallbacks, opened by the first one */
    qk_buffer *buffers;
    qk_device_times times;
    char error[QK_ERROR_LEN];
};

/* Monotonic wall-clock seconds. */
double qk_seconds(void);

/* Records a formatted message on ctx (or the context-less slot when ctx is NULL) and
 * returns status, so error paths read `return qk_fail(ctx, QK_ERR_SHAPE, "...", ...)`. */
qk_status qk_fail(qk_context *ctx, qk_status status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Element size of a float type used as src/dst of an operation; 0 for other types. */
size_t qk_float_type_size(qk_type t);

/* Where an operation runs: on the context's device, or on the cpu in its stead (a fallback). */
typedef struct qk_exec {
    const qk_backend *backend;
    void *state;
    int fallback; /* the cpu stands in for the device: operands in device memory go through host copies */
} qk_exec;

/* Where `op` on `type` runs on this context. On the device when it can (backend->why_not); else,
 * for a synchronous call on an automatically chosen device, on the cpu, announced once per (op,
 * type) through the context's notice callback when `announce` (the calls; not the workspace
 * query); else QK_ERR_UNSUPPORTED saying what cannot run where and why. `what` names the call. */
qk_status qk_exec_choose(qk_context *ctx, qk_op op, qk_type type, int async, int announce, const char *what,
                         qk_exec *ex);

/* An operand (qk_mem) resolved to the executing backend's address space. `staged` is a temporary
 * allocation of that backend standing in for the caller's memory (`from`): host memory for a
 * device that cannot address it, or device memory for the cpu of a fallback. */
typedef struct qk_operand {
    void *addr;
    void *staged;
    const qk_mem *from;
    size_t bytes;
} qk_operand;

/* Resolves m, which must hold `need` bytes, for ex; copies an input into the staging where there
 * is one. Host memory is refused when `async`. `what` names the operand in messages. On failure
 * nothing stays staged. */
qk_status qk_resolve(qk_context *ctx, const qk_exec *ex, const qk_mem *m, size_t need, int is_input, int async,
                     const char *what, qk_operand *op);
/* An output's staged bytes back to the caller's memory (nothing to do when it was not staged). */
qk_status qk_write_back(qk_context *ctx, const qk_exec *ex, const qk_operand *op);
/* Frees the operand's staging, if any (operands never resolved, all zero, are ignored). */
void qk_release(const qk_exec *ex, qk_operand *op);
/* Adds to *out the weighted error of q against x (rows x cols f32 each): per row, then the rows in
 * order; row r weighed by weights + (r / rows_per_weights) * cols, or 1 (weights NULL), with means
 * at the same offset (NULL: none, so centered = err and bias = 0). The sums of
 * qk_quantize_measure_ex on the host. */
void qk_weighted_error(const float *x, const float *q, int64_t rows, int64_t cols, const float *weights,
                       const float *means, int64_t rows_per_weights, qk_quantize_error *out);

/* The error of a quantize whose input holds NaN or Inf: `first` is the value's flat index,
 * `value` its bytes (host memory), as the backends' non-finite scans report it. */
qk_status qk_nonfinite_fail(qk_context *ctx, const qk_quantize_args *a, unsigned long long first, const void *value);
/* The check of every asynchronous call: the context runs on the caller's CUDA stream. */
qk_status qk_check_async(qk_context *ctx, const char *what);

/* A MoE call of `kind` (qkern.h), synchronous or (async) enqueued on `stream` and never falling
 * back: the desc validated once into the call's qk_moe_args, planned once by the backend that
 * runs it, its operands resolved, then run. Every MoE entry point goes through it. */
qk_status qk_moe_run(qk_context *ctx, const qk_moe_desc *d, qk_moe_kind kind, int async, void *stream);

/* qk_quantize through the backend's streaming queues (backend.h: quantize_queued), with
 * qk_quantize's checks: desc's src and dst are host memory from backend->host_alloc and, with
 * the imatrix, stay untouched until qk_quantize_wait(ctx, queue) returns the step's status. */
qk_status qk_quantize_queued(qk_context *ctx, int queue, const qk_quantize_desc *desc);
qk_status qk_quantize_wait(qk_context *ctx, int queue);

#endif
