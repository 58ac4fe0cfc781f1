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

struct qk_context {
    const qk_backend *backend;
    void *state;
    int device_index;
    int n_threads;
    qk_buffer *buffers;
    char error[QK_ERROR_LEN];
};

/* Records a formatted message on ctx (or the context-less slot when ctx is NULL) and
 * returns status, so error paths read `return qk_fail(ctx, QK_ERR_SHAPE, "...", ...)`. */
qk_status qk_fail(qk_context *ctx, qk_status status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Element size of a float type used as src/dst of an operation; 0 for other types. */
size_t qk_float_type_size(qk_type t);

/* An operand (qk_mem) resolved to the backend's address space. `staged` is a temporary device
 * allocation standing in for host memory, whose bytes go back to `host` after an output. */
typedef struct qk_operand {
    void *addr;
    void *staged;
    void *host;
    size_t bytes;
} qk_operand;

/* Resolves m, which must hold `need` bytes; host memory is staged for backends that cannot
 * address it (an input copied there), and refused when `async`. `what` names the operand in
 * messages. On failure nothing stays staged. */
qk_status qk_resolve(qk_context *ctx, const qk_mem *m, size_t need, int is_input, int async, const char *what,
                     qk_operand *op);
/* Frees the operand's staging, if any (NULL addr operands are ignored). */
void qk_release(qk_context *ctx, qk_operand *op);
/* The error of a quantize whose input holds NaN or Inf: `first` is the value's flat index,
 * `value` its bytes (host memory), as the backends' non-finite scans report it. */
qk_status qk_nonfinite_fail(qk_context *ctx, const qk_quantize_args *a, unsigned long long first, const void *value);
/* The check of every asynchronous call: the context runs on the caller's CUDA stream. */
qk_status qk_check_async(qk_context *ctx, const char *what);

/* qk_quantize through the backend's streaming queues (backend.h: quantize_queued), with
 * qk_quantize's checks: desc's src and dst are host memory from backend->host_alloc and, with
 * the imatrix, stay untouched until qk_quantize_wait(ctx, queue) returns the step's status. */
qk_status qk_quantize_queued(qk_context *ctx, int queue, const qk_quantize_desc *desc);
qk_status qk_quantize_wait(qk_context *ctx, int queue);

#endif
