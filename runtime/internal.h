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

/* qk_quantize through the backend's streaming queues (backend.h: quantize_queued), with
 * qk_quantize's checks: desc's src and dst are host memory from backend->host_alloc and, with
 * the imatrix, stay untouched until qk_quantize_wait(ctx, queue) returns the step's status. */
qk_status qk_quantize_queued(qk_context *ctx, int queue, const qk_quantize_desc *desc);
qk_status qk_quantize_wait(qk_context *ctx, int queue);

#endif
