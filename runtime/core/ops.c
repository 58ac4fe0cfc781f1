/* qk_quantize and qk_dequantize (and their asynchronous forms of qkern_cuda.h, and the queued
 * form that model_quantize.c streams through): argument checks shared by every backend, staging
 * of host memory for backends that cannot address it, then dispatch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats.h"
#include "internal.h"
#include "invariants.h"
#include "qkern_cuda.h"

/* The caller's device memory behind m (a buffer's, or its own device pointer), as the context's
 * backend addresses it for read and write. */
static void device_place(const qk_mem *m, void **mem, size_t *offset) {
    *mem = m->buffer ? m->buffer->mem : m->device;
    *offset = m->offset;
}

/* A temporary allocation of ex's backend for the operand, filled from the caller's memory when
 * it is an input: host memory for a device (its write), device memory for the cpu of a fallback
 * (the context's backend reads it). */
static qk_status stage(qk_context *ctx, const qk_exec *ex, const qk_mem *m, int is_input, qk_operand *op) {
    qk_status st = ex->backend->alloc(ctx, ex->state, op->bytes, &op->staged);
    if (st != QK_OK) {
        op->staged = NULL;
        return st;
    }
    op->addr = ex->backend->address(op->staged, 0);
    if (is_input) {
        if (ex->fallback) {
            void *mem;
            size_t offset;
            device_place(m, &mem, &offset);
            st = ctx->backend->read(ctx, ctx->state, mem, offset, op->addr, op->bytes);
        } else {
            const double t0 = qk_seconds();
            st = ex->backend->write(ctx, ex->state, op->staged, 0, m->host, op->bytes);
            ctx->times.h2d += qk_seconds() - t0;
            ctx->times.h2d_bytes += op->bytes;
        }
    }
    if (st != QK_OK) qk_release(ex, op);
    return st;
}

/* async: the operation is enqueued and returns at once, so host memory (which would need a
 * staged copy and a synchronization) is refused; an asynchronous call never falls back. */
qk_status qk_resolve(qk_context *ctx, const qk_exec *ex, const qk_mem *m, size_t need, int is_input, int async,
                     const char *what, qk_operand *op) {
    assert(!(async && ex->fallback));
    op->addr = NULL;
    op->staged = NULL;
    op->from = m;
    op->bytes = need;
    if ((m->buffer != NULL) + (m->host != NULL) + (m->device != NULL) > 1)
        return qk_fail(ctx, QK_ERR_INVALID_ARG, "%s: give one of host memory, a buffer or device memory", what);
    if (m->device || m->buffer) {
        if (m->device && ctx->backend->host_memory)
            return qk_fail(ctx, QK_ERR_INVALID_ARG, "%s: device memory given to a %s context", what,
                           ctx->backend->name);
        const qk_buffer *b = m->buffer;
        if (b && b->ctx != ctx) return qk_fail(ctx, QK_ERR_INVALID_ARG, "%s: buffer belongs to another context", what);
        if (b && (m->offset > b->bytes || m->bytes > b->bytes - m->offset))
            return qk_fail(ctx, QK_ERR_BUFFER, "%s: range [%zu, +%zu) exceeds the buffer's %zu bytes", what, m->offset,
                           m->bytes, b->bytes);
        if (m->bytes < need)
            return qk_fail(ctx, QK_ERR_BUFFER, "%s: %zu bytes given, %zu needed", what, m->bytes, need);
        if (ex->fallback) return stage(ctx, ex, m, is_input, op);
        void *mem;
        size_t offset;
        device_place(m, &mem, &offset);
        op->addr = ctx->backend->address(mem, offset);
        return QK_OK;
    }
    if (!m->host)
        return qk_fail(ctx, QK_ERR_INVALID_ARG, "%s: no memory given (host pointer and buffer are NULL)", what);
    if (m->bytes < need) return qk_fail(ctx, QK_ERR_BUFFER, "%s: %zu bytes given, %zu needed", what, m->bytes, need);
    if (async)
        return qk_fail(ctx, QK_ERR_INVALID_ARG, "%s: an asynchronous call takes device memory, not host memory", what);
    if (ex->backend->host_memory) {
        op->addr = m->host;
        return QK_OK;
    }
    return stage(ctx, ex, m, is_input, op);
}

qk_status qk_write_back(qk_context *ctx, const qk_exec *ex, const qk_operand *op) {
    if (!op->staged) return QK_OK;
    assert(op->from && op->addr);
    if (ex->fallback) { /* the cpu's result to the device memory it stands in for */
        assert(op->from->buffer || op->from->device);
        void *mem;
        size_t offset;
        device_place(op->from, &mem, &offset);
        return ctx->backend->write(ctx, ctx->state, mem, offset, op->addr, op->bytes);
    }
    assert(op->from->host);
    const double t0 = qk_seconds();
    qk_status st = ex->backend->read(ctx, ex->state, op->staged, 0, op->from->host, op->bytes);
    ctx->times.d2h += qk_seconds() - t0;
    ctx->times.d2h_bytes += op->bytes;
    return st;
}

void qk_release(const qk_exec *ex, qk_operand *op) {
    if (op->staged) ex->backend->free(ex->state, op->staged);
    op->staged = NULL;
}

/* An operation's input and output, resolved; on failure nothing stays staged. */
static qk_status resolve_operands(qk_context *ctx, const qk_exec *ex, const char *op_name, const qk_mem *src,
                                  size_t src_bytes, const qk_mem *dst, size_t dst_bytes, int async, qk_operand *in,
                                  qk_operand *out) {
    char what[64];
    snprintf(what, sizeof what, "%s: src", op_name);
    qk_status st = qk_resolve(ctx, ex, src, src_bytes, 1, async, what, in);
    if (st != QK_OK) return st;
    snprintf(what, sizeof what, "%s: dst", op_name);
    if ((st = qk_resolve(ctx, ex, dst, dst_bytes, 0, async, what, out)) != QK_OK) qk_release(ex, in);
    assert(st != QK_OK || (in->addr && out->addr));
    return st;
}

/* After the backend ran (status st): the staged output back to the caller's memory, both
 * operands released, the context's message cleared on success. */
static qk_status complete(qk_context *ctx, const qk_exec *ex, qk_status st, qk_operand *in, qk_operand *out) {
    if (st == QK_OK) st = qk_write_back(ctx, ex, out);
    qk_release(ex, in);
    qk_release(ex, out);
    if (st == QK_OK) ctx->error[0] = 0;
    return st;
}

/* Shape and type checks common to both directions; fills the element counts. */
static qk_status check_shape(qk_context *ctx, const char *what, int type, int float_type, int64_t rows, int64_t cols,
                             const qk_format **fmt, size_t *row_bytes, size_t *float_bytes) {
    *fmt = qk_format_of(type);
    if (!*fmt) return qk_fail(ctx, QK_ERR_TYPE, "%s: unknown type id %d", what, type);
    size_t esize = qk_float_type_size((qk_type)float_type);
    if (!esize)
        return qk_fail(ctx, QK_ERR_TYPE, "%s: values must be F32, F16 or BF16, not type id %d", what, float_type);
    if (rows <= 0 || cols <= 0)
        return qk_fail(ctx, QK_ERR_SHAPE, "%s: shape %lld x %lld: rows and cols must be positive", what,
                       (long long)rows, (long long)cols);
    if (cols % (*fmt)->block_elems)
        return qk_fail(ctx, QK_ERR_SHAPE, "%s: cols = %lld is not a multiple of %s's block size %d", what,
                       (long long)cols, (*fmt)->name, (*fmt)->block_elems);
    size_t rb = qk_type_row_bytes(type, cols), n;
    if (!rb || __builtin_mul_overflow(rb, (size_t)rows, &n) || __builtin_mul_overflow((size_t)rows, (size_t)cols, &n) ||
        __builtin_mul_overflow(n, esize, &n))
        return qk_fail(ctx, QK_ERR_SHAPE, "%s: shape %lld x %lld is too large to address", what, (long long)rows,
                       (long long)cols);
    *row_bytes = rb;
    *float_bytes = n;
    return QK_OK;
}

qk_quantize_desc qk_quantize_default_desc(void) {
    qk_quantize_desc d = {0};
    d.struct_size = sizeof d;
    d.type = QK_TYPE_Q8_0;
    d.src_type = QK_TYPE_F32;
    return d;
}

qk_dequantize_desc qk_dequantize_default_desc(void) {
    qk_dequantize_desc d = {0};
    d.struct_size = sizeof d;
    d.type = QK_TYPE_Q8_0;
    d.dst_type = QK_TYPE_F32;
    return d;
}

static qk_status check_imatrix(qk_context *ctx, const qk_quantize_desc *d, const qk_format *f, int read_values) {
    if (!d->imatrix) {
        if (d->imatrix_len)
            return qk_fail(ctx, QK_ERR_INVALID_ARG, "imatrix_len is %lld but imatrix is NULL",
                           (long long)d->imatrix_len);
        if (f->needs_imatrix && !(d->flags & QK_QUANTIZE_ALLOW_NO_IMATRIX))
            return qk_fail(ctx, QK_ERR_NEEDS_IMATRIX,
                           "%s needs an importance matrix (imatrix): without one its 2-bit and smaller codes lose "
                           "too much; pass one, or set QK_QUANTIZE_ALLOW_NO_IMATRIX to force it",
                           f->name);
        return QK_OK;
    }
    if (d->imatrix_len <= 0 || d->imatrix_len % d->cols || d->rows % (d->imatrix_len / d->cols))
        return qk_fail(ctx, QK_ERR_SHAPE,
                       "imatrix has %lld values: the tensor (%lld x %lld) takes %lld columns, or a multiple of that "
                       "whose factor divides the rows",
                       (long long)d->imatrix_len, (long long)d->rows, (long long)d->cols, (long long)d->cols);
    for (int64_t j = 0; read_values && j < d->imatrix_len; j++)
        if (!isfinite(d->imatrix[j]) || d->imatrix[j] < 0.0f)
            return qk_fail(ctx, QK_ERR_VALUE, "imatrix[%lld] is %g: importance weights must be finite and >= 0",
                           (long long)j, (double)d->imatrix[j]);
    return QK_OK;
}

/* The message of a non-finite input: `first` is its flat index, `value` its bytes (host). */
qk_status qk_nonfinite_fail(qk_context *ctx, const qk_quantize_args *a, unsigned long long first, const void *value) {
    size_t esize = qk_float_type_size(a->src_type);
    uint32_t bits = 0;
    memcpy(&bits, value, esize);
    uint32_t man = esize == 4 ? bits & 0x7fffffu : a->src_type == QK_TYPE_F16 ? bits & 0x3ffu : bits & 0x7fu;
    int neg = (bits >> (8 * esize - 1)) & 1;
    return qk_fail(ctx, QK_ERR_VALUE, "input value at row %lld, column %lld is %s: cannot quantize to %s",
                   (long long)(first / (unsigned long long)a->cols), (long long)(first % (unsigned long long)a->cols),
                   man   ? "NaN"
                   : neg ? "-Inf"
                         : "+Inf",
                   qk_type_name(a->type));
}

qk_status qk_check_async(qk_context *ctx, const char *what) {
    if (ctx && ctx->backend->kind != QK_DEVICE_CUDA)
        return qk_fail(ctx, QK_ERR_UNSUPPORTED, "%s: the context is on %s, not a CUDA device", what,
                       ctx->backend->name);
    return QK_OK;
}

/* The checks of every form of quantize; fills the byte counts of src and dst. */
static qk_status check_quantize(qk_context *ctx, const qk_quantize_desc *d, int async, size_t *src_bytes,
                                size_t *dst_bytes) {
    if (!ctx) return qk_fail(NULL, QK_ERR_INVALID_ARG, "qk_quantize: context is NULL");
    if (!d) return qk_fail(ctx, QK_ERR_INVALID_ARG, "qk_quantize: desc is NULL");
    if (d->struct_size < sizeof *d)
        return qk_fail(ctx, QK_ERR_INVALID_ARG, "qk_quantize_desc.struct_size is %zu, expected %zu", d->struct_size,
                       sizeof *d);
    if (d->flags & ~(unsigned)QK_QUANTIZE_ALLOW_NO_IMATRIX)
        return qk_fail(ctx, QK_ERR_INVALID_ARG, "qk_quantize: unknown flags 0x%x", d->flags);
    const qk_format *f;
    size_t row_bytes;
    qk_status st = check_shape(ctx, "qk_quantize", d->type, d->src_type, d->rows, d->cols, &f, &row_bytes, src_bytes);
    if (st != QK_OK) return st;
    if ((st = check_imatrix(ctx, d, f, !async)) != QK_OK) return st;
    *dst_bytes = row_bytes * (size_t)d->rows;
    return QK_OK;
}

/* The measurement a synchronous quantize may add (qk_quantize_measure). */
typedef struct measure_req {
    const float *weights, *means; /* means NULL, or laid out as weights */
    int64_t mats;                 /* groups of rows of weights (0 without) */
    qk_quantize_error *out;
} measure_req;

/* qk_quantize_measure where the backend has no quantize_error: the blocks (in the caller's dst
 * now) and the input widened to f32 through the context's dequantize, then added on the host in
 * a fixed order (per row, then the rows in order). */
static qk_status measure_on_host(qk_context *ctx, const qk_quantize_desc *d, const measure_req *m) {
    const size_t n = (size_t)d->rows * (size_t)d->cols;
    float *x = malloc(n * sizeof *x), *q = malloc(n * sizeof *q);
    qk_status st = QK_OK;
    if (!x || !q) st = qk_fail(ctx, QK_ERR_OUT_OF_MEMORY, "qk_quantize_measure: out of host memory (%zu values)", n);
    qk_dequantize_desc dq = qk_dequantize_default_desc();
    dq.dst_type = QK_TYPE_F32;
    dq.rows = d->rows;
    dq.cols = d->cols;
    if (st == QK_OK) {
        dq.type = d->type;
        dq.src = d->dst;
        dq.dst = qk_host(q, n * sizeof *q);
        st = qk_dequantize(ctx, &dq);
    }
    if (st == QK_OK) {
        dq.type = d->src_type;
        dq.src = d->src;
        dq.dst = qk_host(x, n * sizeof *x);
        st = qk_dequantize(ctx, &dq);
    }
    qk_quantize_error e = {0, 0, 0, 0, 0};
    if (st == QK_OK)
        qk_weighted_error(x, q, d->rows, d->cols, m->weights, m->means, m->mats ? d->rows / m->mats : 1, &e);
    free(x);
    free(q);
    if (st == QK_OK) *m->out = e;
    return st;
}

void qk_weighted_error(const float *x, const float *q, int64_t rows, int64_t cols, const float *weights,
                       const float *means, int64_t rows_per_weights, qk_quantize_error *out) {
    for (int64_t r = 0; r < rows; r++) {
        const float *w = weights ? weights + r / rows_per_weights * cols : NULL;
        const float *a = means ? means + r / rows_per_weights * cols : NULL;
        qk_quantize_error row = {0, 0, 0, 0, 0};
        double dot = 0.0; /* sum a (x - q): squared only once the row is complete */
        for (int64_t c = 0; c < cols; c++) {
            const double v = x[r * cols + c], diff = v - (double)q[r * cols + c], wc = w ? (double)w[c] : 1.0;
            const double ac = a ? (double)a[c] : 0.0, var = wc - ac * ac;
            row.err += wc * diff * diff;
            row.signal += wc * v * v;
            row.weight += wc;
            row.centered += (var > 0.0 ? var : 0.0) * diff * diff;
            dot += ac * diff;
        }
        out->err += row.err;
        out->signal += row.signal;
        out->weight += row.weight;
        out->centered += row.centered;
        out->bias += dot * dot;
    }
}

/* async: enqueue on `stream` (device memory only, imatrix in device memory, no NaN scan).
 * m: measure the result too (synchronous only). */
static qk_status quantize(qk_context *ctx, const qk_quantize_desc *d, int async, void *stream, const measure_req *m) {
    size_t src_bytes = 0, dst_bytes = 0;
    qk_status st = check_quantize(ctx, d, async, &src_bytes, &dst_bytes);
    qk_exec ex;
    if (st == QK_OK) st = qk_exec_choose(ctx, QK_OP_QUANTIZE, d->type, async, 1, "qk_quantize", &ex);
    if (st != QK_OK) return st;

    qk_operand src, dst;
    st = resolve_operands(ctx, &ex, "qk_quantize", &d->src, src_bytes, &d->dst, dst_bytes, async, &src, &dst);
    if (st != QK_OK) return st;
    qk_quantize_args a = {d->type,  d->src_type, d->rows,    d->cols,
                          src.addr, dst.addr,    d->imatrix, d->imatrix ? d->imatrix_len / d->cols : 0,
                          async,    stream};
    const double t0 = qk_seconds();
    st = ex.backend->quantize(ctx, ex.state, &a);
    const int on_device = m && ex.backend->quantize_error;
    if (st == QK_OK && on_device)
        st = ex.backend->quantize_error(ctx, ex.state, &a, m->weights, m->means, m->mats, m->out);
    if (!async && !ex.backend->host_memory) ctx->times.kernel += qk_seconds() - t0;
    st = complete(ctx, &ex, st, &src, &dst);
    if (st == QK_OK && m && !on_device) st = measure_on_host(ctx, d, m);
    return st;
}

qk_status qk_quantize(qk_context *ctx, const qk_quantize_desc *d) { return quantize(ctx, d, 0, NULL, NULL); }

qk_measure_desc qk_measure_default_desc(void) {
    qk_measure_desc d = {0};
    d.struct_size = sizeof d;
    return d;
}

qk_status qk_quantize_measure_ex(qk_context *ctx, const qk_quantize_desc *d, const qk_measure_desc *md,
                                 qk_quantize_error *out) {
    if (!out) return qk_fail(ctx, QK_ERR_INVALID_ARG, "qk_quantize_measure: out is NULL");
    if (!ctx || !d) return quantize(ctx, d, 0, NULL, NULL); /* its checks say which */
    if (!md) return qk_fail(ctx, QK_ERR_INVALID_ARG, "qk_quantize_measure_ex: the measure desc is NULL");
    if (md->struct_size < sizeof *md)
        return qk_fail(ctx, QK_ERR_INVALID_ARG, "qk_measure_desc.struct_size is %zu, expected %zu", md->struct_size,
                       sizeof *md);
    const float *weights = md->weights, *means = md->means;
    const int64_t weights_len = md->weights_len;
    if (means && !weights)
        return qk_fail(ctx, QK_ERR_INVALID_ARG,
                       "qk_quantize_measure_ex: means without weights (the error needs the mean squares too)");
    if (!weights != !weights_len ||
        (weights && (weights_len <= 0 || d->cols <= 0 || weights_len % d->cols || d->rows % (weights_len / d->cols))))
        return qk_fail(ctx, QK_ERR_SHAPE,
                       "qk_quantize_measure: %lld weights%s: the tensor (%lld x %lld) takes %lld, or a multiple of "
                       "that whose factor divides the rows",
                       (long long)weights_len, weights ? "" : " but weights is NULL", (long long)d->rows,
                       (long long)d->cols, (long long)d->cols);
    for (int64_t j = 0; weights && j < weights_len; j++)
        if (!isfinite(weights[j]) || weights[j] < 0.0f)
            return qk_fail(ctx, QK_ERR_VALUE,
                           "qk_quantize_measure: weights[%lld] is %g: weights must be finite and >= 0", (long long)j,
                           (double)weights[j]);
    for (int64_t j = 0; means && j < weights_len; j++)
        if (!isfinite(means[j]))
            return qk_fail(ctx, QK_ERR_VALUE, "qk_quantize_measure: means[%lld] is %g: means must be finite",
                           (long long)j, (double)means[j]);
    const measure_req m = {weights, means, weights ? weights_len / d->cols : 0, out};
    return quantize(ctx, d, 0, NULL, &m);
}

qk_status qk_quantize_measure(qk_context *ctx, const qk_quantize_desc *d, const float *weights, int64_t weights_len,
                              qk_quantize_error *out) {
    qk_measure_desc md = qk_measure_default_desc();
    md.weights = weights;
    md.weights_len = weights_len;
    return qk_quantize_measure_ex(ctx, d, &md, out);
}

qk_status qk_cuda_quantize_async(qk_context *ctx, const qk_quantize_desc *d, qk_cuda_stream stream) {
    qk_status st = qk_check_async(ctx, "qk_cuda_quantize_async");
    return st != QK_OK ? st : quantize(ctx, d, 1, stream, NULL);
}

/* Host memory only, and no staging: the backend copies from and to it on the queue. */
static qk_status check_queued_operand(qk_context *ctx, const qk_mem *m, size_t need, const char *what) {
    if (!m->host || m->buffer || m->device)
        return qk_fail(ctx, QK_ERR_INVALID_ARG, "%s: a queued call takes host memory from host_alloc", what);
    if (m->bytes < need) return qk_fail(ctx, QK_ERR_BUFFER, "%s: %zu bytes given, %zu needed", what, m->bytes, need);
    return QK_OK;
}

qk_status qk_quantize_queued(qk_context *ctx, int queue, const qk_quantize_desc *d) {
    size_t src_bytes = 0, dst_bytes = 0;
    qk_status st = check_quantize(ctx, d, 0, &src_bytes, &dst_bytes);
    if (st != QK_OK) return st;
    if (!ctx->backend->quantize_queued)
        return qk_fail(ctx, QK_ERR_UNSUPPORTED, "%s has no queues to stream through", ctx->backend->name);
    /* no fallback here: the streaming quantizer asks supports() and takes the cpu path itself */
    char buf[160];
    const char *why = ctx->backend->why_not(ctx->state, QK_OP_QUANTIZE, d->type, buf, sizeof buf);
    if (why)
        return qk_fail(ctx, QK_ERR_UNSUPPORTED, "qk_quantize_queued: %s cannot quantize %s (%s)", ctx->label,
                       qk_type_name(d->type), why);
    if (queue < 0 || queue >= QK_QUEUES)
        return qk_fail(ctx, QK_ERR_INVALID_ARG, "qk_quantize_queued: queue %d (there are %d)", queue, QK_QUEUES);
    if ((st = check_queued_operand(ctx, &d->src, src_bytes, "qk_quantize_queued: src")) != QK_OK ||
        (st = check_queued_operand(ctx, &d->dst, dst_bytes, "qk_quantize_queued: dst")) != QK_OK)
        return st;
    qk_quantize_args a = {.type = d->type,
                          .src_type = d->src_type,
                          .rows = d->rows,
                          .cols = d->cols,
                          .src = d->src.host,
                          .dst = d->dst.host,
                          .imatrix = d->imatrix,
                          .imatrix_mats = d->imatrix ? d->imatrix_len / d->cols : 0};
    st = ctx->backend->quantize_queued(ctx, ctx->state, queue, &a);
    if (st == QK_OK) ctx->error[0] = 0;
    return st;
}

qk_status qk_quantize_wait(qk_context *ctx, int queue) {
    if (!ctx->backend->wait_queue || queue < 0 || queue >= QK_QUEUES) return QK_OK; /* nothing can be queued */
    qk_status st = ctx->backend->wait_queue(ctx, ctx->state, queue);
    if (st == QK_OK) ctx->error[0] = 0;
    return st;
}

static qk_status dequantize(qk_context *ctx, const qk_dequantize_desc *d, int async, void *stream) {
    if (!ctx) return qk_fail(NULL, QK_ERR_INVALID_ARG, "qk_dequantize: context is NULL");
    if (!d) return qk_fail(ctx, QK_ERR_INVALID_ARG, "qk_dequantize: desc is NULL");
    if (d->struct_size < sizeof *d)
        return qk_fail(ctx, QK_ERR_INVALID_ARG, "qk_dequantize_desc.struct_size is %zu, expected %zu", d->struct_size,
                       sizeof *d);
    const qk_format *f;
    size_t row_bytes = 0, dst_bytes = 0;
    qk_status st =
        check_shape(ctx, "qk_dequantize", d->type, d->dst_type, d->rows, d->cols, &f, &row_bytes, &dst_bytes);
    qk_exec ex;
    if (st == QK_OK) st = qk_exec_choose(ctx, QK_OP_DEQUANTIZE, d->type, async, 1, "qk_dequantize", &ex);
    if (st != QK_OK) return st;

    qk_operand src, dst;
    st = resolve_operands(ctx, &ex, "qk_dequantize", &d->src, row_bytes * (size_t)d->rows, &d->dst, dst_bytes, async,
                          &src, &dst);
    if (st != QK_OK) return st;
    qk_dequantize_args a = {d->type, d->dst_type, d->rows, d->cols, src.addr, dst.addr, async, stream};
    return complete(ctx, &ex, ex.backend->dequantize(ctx, ex.state, &a), &src, &dst);
}

qk_status qk_dequantize(qk_context *ctx, const qk_dequantize_desc *d) { return dequantize(ctx, d, 0, NULL); }

qk_status qk_cuda_dequantize_async(qk_context *ctx, const qk_dequantize_desc *d, qk_cuda_stream stream) {
    qk_status st = qk_check_async(ctx, "qk_cuda_dequantize_async");
    return st != QK_OK ? st : dequantize(ctx, d, 1, stream);
}
