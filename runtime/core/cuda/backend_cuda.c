/* The CUDA backend: device discovery, device memory, one stream per context (plus the two
 * streaming queues of backend.h), and dispatch to the kernels of kernels/cuda. The CUDA
 * runtime is linked statically and finds the driver at run time: without a driver or a GPU,
 * device_count() is 0 and the backend is simply absent. */
#include <cuda_runtime.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_kernels.h"
#include "formats.h"
#include "internal.h"
#include "invariants.h"

/* Turns a CUDA error into a status with CUDA's own message, near where it happened. */
#define QK_CHECK_CUDA(ctx, call)                                                                                       \
    do {                                                                                                               \
        cudaError_t err_ = (call);                                                                                     \
        if (err_ != cudaSuccess) return cuda_fail((ctx), err_, #call);                                                 \
    } while (0)

static qk_status cuda_fail(qk_context *ctx, cudaError_t err, const char *what) {
    qk_status st = err == cudaErrorMemoryAllocation ? QK_ERR_OUT_OF_MEMORY : QK_ERR_BACKEND;
    cudaGetLastError(); /* clear a non-sticky error so the context stays usable */
    const char *call = strchr(what, '(');
    return qk_fail(ctx, st, "cuda: %.*s: %s (%s)", call ? (int)(call - what) : (int)strlen(what), what,
                   cudaGetErrorString(err), cudaGetErrorName(err));
}

/* ---- devices ------------------------------------------------------------------------------ */

static pthread_once_t count_once = PTHREAD_ONCE_INIT;
static int n_devices;

static void count_devices(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        n = 0;
    }
    n_devices = n;
}

static int cuda_device_count(void) {
    pthread_once(&count_once, count_devices);
    return n_devices;
}

static qk_status cuda_device_info(int index, qk_device_info *info) {
    struct cudaDeviceProp p;
    cudaError_t err = cudaGetDeviceProperties(&p, index);
    if (err != cudaSuccess) return cuda_fail(NULL, err, "cudaGetDeviceProperties()");
    memset(info, 0, sizeof *info);
    snprintf(info->id, sizeof info->id, "cuda:%d", index);
    snprintf(info->name, sizeof info->name, "%.100s (sm_%d%d)", p.name, p.major, p.minor);
    info->kind = QK_DEVICE_CUDA;
    info->memory_bytes = (uint64_t)p.totalGlobalMem;
    info->compute_units = p.multiProcessorCount;
    return QK_OK;
}

/* ---- contexts ----------------------------------------------------------------------------- */

/* A streaming queue (backend.h: quantize_queued): its own stream and device buffers, so that
 * one queue's upload or download runs beside the other's kernel. Buffers grow to the largest
 * step seen and are then reused; the imatrix goes through pinned memory so that its upload is
 * asynchronous too, and the scan's result comes back into pinned memory read after the wait. */
typedef struct cuda_queue {
    cudaStream_t stream;
    void *src, *dst;
    float *imatrix, *imatrix_host;
    size_t src_cap, dst_cap, imatrix_cap, imatrix_host_cap;
    unsigned long long *first_bad, *first_bad_host; /* device scalar of the scan, its pinned copy */
    qk_quantize_args step;                          /* in flight: names the bad value after the wait */
    int busy;
    /* Recorded around the step's upload, its kernels and its download: their device times go to
     * the context's times (internal.h) once waited for. */
    cudaEvent_t ev[4];
    int timed; /* all four recorded for the step in flight */
    size_t up_bytes, down_bytes;
} cuda_queue;

typedef struct cuda_state {
    int device;
    int cc; /* compute capability, 10 * major + minor */
    cudaStream_t stream;
    float *imatrix; /* device copy of the current call's imatrix */
    size_t imatrix_cap;
    unsigned long long *first_bad; /* device scalar for the non-finite scan */
    double *error;                 /* qk_quantize_measure: 3 sums, then the CTAs' partial sums */
    cuda_queue queues[QK_QUEUES];
} cuda_state;

static void cuda_close(void *state) {
    cuda_state *s = state;
    if (!s) return;
    cudaSetDevice(s->device);
    for (int i = 0; i < QK_QUEUES; i++) {
        cuda_queue *q = &s->queues[i];
        if (q->stream) cudaStreamSynchronize(q->stream); /* its copies may still use host memory */
        cudaFree(q->src);
        cudaFree(q->dst);
        cudaFree(q->imatrix);
        cudaFree(q->first_bad);
        cudaFreeHost(q->imatrix_host);
        cudaFreeHost(q->first_bad_host);
        if (q->stream) cudaStreamDestroy(q->stream);
        for (int k = 0; k < 4; k++)
            if (q->ev[k]) cudaEventDestroy(q->ev[k]);
    }
    cudaFree(s->imatrix);
    cudaFree(s->first_bad);
    cudaFree(s->error);
    if (s->stream) cudaStreamDestroy(s->stream);
    free(s);
}

static qk_status cuda_open(qk_context *ctx, int index, void **state) {
    cuda_state *s = calloc(1, sizeof *s);
    if (!s) return qk_fail(ctx, QK_ERR_OUT_OF_MEMORY, "cannot allocate the cuda backend");
    s->device = index;
    const char *step = "cudaSetDevice()";
    cudaError_t err = cudaSetDevice(index);
    int major = 0, minor = 0;
    if (err == cudaSuccess)
        step = "cudaDeviceGetAttribute()",
        err = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, index);
    if (err == cudaSuccess) err = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, index);
    s->cc = 10 * major + minor;
    if (err == cudaSuccess)
        step = "cudaStreamCreate()", err = cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking);
    for (int i = 0; i < QK_QUEUES && err == cudaSuccess; i++) {
        cuda_queue *q = &s->queues[i];
        step = "cudaStreamCreate()", err = cudaStreamCreateWithFlags(&q->stream, cudaStreamNonBlocking);
        if (err == cudaSuccess) step = "cudaMalloc()", err = cudaMalloc((void **)&q->first_bad, sizeof *q->first_bad);
        if (err == cudaSuccess)
            step = "cudaHostAlloc()",
            err = cudaHostAlloc((void **)&q->first_bad_host, sizeof *q->first_bad_host, cudaHostAllocDefault);
    }
    if (err == cudaSuccess) step = "cudaMalloc()", err = cudaMalloc((void **)&s->first_bad, sizeof *s->first_bad);
    if (err == cudaSuccess) step = "uploading the kernel tables()", err = (cudaError_t)qk_cuda_kernels_init();
    if (err != cudaSuccess) {
        cuda_close(s);
        return cuda_fail(ctx, err, step);
    }
    *state = s;
    return QK_OK;
}

/* The MoE kernels stage weights with cp.async and multiply with mma.sync m16n8k16 (f16 in, f32
 * accumulate): both from compute capability 8.0 (kernels/cuda/moe_kernels.cuh). */
#define MOE_MIN_CC 80

/* The format table's cuda column (which the kernels' dispatch is generated from), then what a
 * kernel needs of the device. */
static const char *cuda_why_not(void *state, qk_op op, qk_type type, char *buf, size_t n) {
    const cuda_state *s = state;
    const qk_format *f = qk_format_of(type);
    if (!f || !(f->backends & QK_IMPL_CUDA)) return "no CUDA implementation in the format table";
    if (op == QK_OP_MOE) {
        if (!qk_cuda_moe_supports((int)type)) return "no CUDA MoE kernel for this type";
        if (s->cc < MOE_MIN_CC) {
            snprintf(buf, n, "its MoE kernels need compute capability %d.%d, the device has %d.%d", MOE_MIN_CC / 10,
                     MOE_MIN_CC % 10, s->cc / 10, s->cc % 10);
            return buf;
        }
        return NULL;
    }
    return qk_cuda_kernel_supports(op == QK_OP_QUANTIZE ? 0 : 1, (int)type) ? NULL : "no CUDA kernel for this type";
}

/* ---- memory ------------------------------------------------------------------------------- */

/* Device memory, or page-locked host memory (which the device copies from and to
 * asynchronously); out of memory is QK_ERR_OUT_OF_MEMORY with CUDA's message. The current
 * device is set. */
static qk_status allocate(qk_context *ctx, size_t bytes, int pinned, void **mem) {
    *mem = NULL;
    cudaError_t err =
        pinned ? cudaHostAlloc(mem, bytes ? bytes : 1, cudaHostAllocDefault) : cudaMalloc(mem, bytes ? bytes : 1);
    if (err != cudaSuccess) {
        cudaGetLastError();
        *mem = NULL;
        return qk_fail(ctx, QK_ERR_OUT_OF_MEMORY, "cuda: cannot allocate %zu bytes of %s memory: %s", bytes,
                       pinned ? "pinned host" : "device", cudaGetErrorString(err));
    }
    return QK_OK;
}

/* Grows a reused buffer (device or pinned) to at least `bytes`; nothing may be using it. Calls
 * of one run have about the same size, so this allocates only during the first few. */
static qk_status grow(qk_context *ctx, void **buf, size_t *cap, size_t bytes, int pinned) {
    if (bytes <= *cap) return QK_OK;
    if (pinned)
        cudaFreeHost(*buf);
    else
        cudaFree(*buf);
    *cap = 0;
    qk_status st = allocate(ctx, bytes, pinned, buf);
    if (st == QK_OK) *cap = bytes;
    return st;
}

static qk_status cuda_alloc(qk_context *ctx, void *state, size_t bytes, void **mem) {
    cuda_state *s = state;
    QK_CHECK_CUDA(ctx, cudaSetDevice(s->device));
    return allocate(ctx, bytes, 0, mem);
}

static void cuda_free(void *state, void *mem) {
    cuda_state *s = state;
    cudaSetDevice(s->device);
    cudaFree(mem);
}

static qk_status cuda_write(qk_context *ctx, void *state, void *mem, size_t offset, const void *src, size_t bytes) {
    cuda_state *s = state;
    QK_CHECK_CUDA(ctx, cudaSetDevice(s->device));
    QK_CHECK_CUDA(ctx, cudaMemcpyAsync((char *)mem + offset, src, bytes, cudaMemcpyHostToDevice, s->stream));
    QK_CHECK_CUDA(ctx, cudaStreamSynchronize(s->stream));
    return QK_OK;
}

static qk_status cuda_read(qk_context *ctx, void *state, const void *mem, size_t offset, void *dst, size_t bytes) {
    cuda_state *s = state;
    QK_CHECK_CUDA(ctx, cudaSetDevice(s->device));
    QK_CHECK_CUDA(ctx, cudaMemcpyAsync(dst, (const char *)mem + offset, bytes, cudaMemcpyDeviceToHost, s->stream));
    QK_CHECK_CUDA(ctx, cudaStreamSynchronize(s->stream));
    return QK_OK;
}

static void *cuda_address(void *mem, size_t offset) { return (char *)mem + offset; }

/* ---- operations --------------------------------------------------------------------------- */

/* The imatrix arrives in host memory; kernels read a device copy. */
static qk_status upload_imatrix(qk_context *ctx, cuda_state *s, const float *im, int64_t n, const float **dev) {
    *dev = NULL;
    if (!im) return QK_OK;
    size_t bytes = (size_t)n * sizeof(float);
    qk_status st = grow(ctx, (void **)&s->imatrix, &s->imatrix_cap, bytes, 0);
    if (st != QK_OK) return st;
    QK_CHECK_CUDA(ctx, cudaMemcpyAsync(s->imatrix, im, bytes, cudaMemcpyHostToDevice, s->stream));
    *dev = s->imatrix;
    return QK_OK;
}

/* NaN/Inf in the input is an error naming its row and column (as on the CPU); nothing is
 * written then. */
static qk_status check_finite(qk_context *ctx, cuda_state *s, const qk_quantize_args *a) {
    unsigned long long first = ~0ull;
    QK_CHECK_CUDA(ctx, cudaMemsetAsync(s->first_bad, 0xff, sizeof first, s->stream));
    QK_CHECK_CUDA(
        ctx, (cudaError_t)qk_cuda_find_nonfinite((int)a->src_type, a->src, a->rows, a->cols, s->first_bad, s->stream));
    QK_CHECK_CUDA(ctx, cudaMemcpyAsync(&first, s->first_bad, sizeof first, cudaMemcpyDeviceToHost, s->stream));
    QK_CHECK_CUDA(ctx, cudaStreamSynchronize(s->stream));
    if (first == ~0ull) return QK_OK;
    size_t esize = qk_float_type_size(a->src_type);
    uint32_t bits = 0;
    QK_CHECK_CUDA(ctx, cudaMemcpy(&bits, (const char *)a->src + first * esize, esize, cudaMemcpyDeviceToHost));
    return qk_nonfinite_fail(ctx, a, first, &bits);
}

/* Synchronous calls check the input, run on the context's stream and wait; asynchronous ones
 * (qkern_cuda.h) only enqueue on the caller's stream. */
static qk_status cuda_quantize(qk_context *ctx, void *state, const qk_quantize_args *a) {
    cuda_state *s = state;
    QK_CHECK_CUDA(ctx, cudaSetDevice(s->device));
    const float *im = a->imatrix;
    cudaStream_t stream = a->async ? (cudaStream_t)a->stream : s->stream;
    if (!a->async) {
        qk_status st = check_finite(ctx, s, a);
        if (st == QK_OK) st = upload_imatrix(ctx, s, a->imatrix, a->cols * a->imatrix_mats, &im);
        if (st != QK_OK) return st;
    }
    QK_CHECK_CUDA(ctx, (cudaError_t)qk_cuda_quantize((int)a->type, (int)a->src_type, a->src, a->dst, a->rows, a->cols,
                                                     im, im ? a->rows / a->imatrix_mats : 0, stream));
    if (!a->async) QK_CHECK_CUDA(ctx, cudaStreamSynchronize(stream));
    return QK_OK;
}

/* After cuda_quantize of the same args: the blocks decoded and the sums reduced on the device;
 * only the sums come back. The weights and the means share the imatrix buffer (weights first),
 * which the quantize that ran before no longer needs. */
static qk_status cuda_quantize_error(qk_context *ctx, void *state, const qk_quantize_args *a, const float *weights,
                                     const float *means, int64_t weights_mats, qk_quantize_error *out) {
    cuda_state *s = state;
    QK_CHECK_CUDA(ctx, cudaSetDevice(s->device));
    const size_t n = weights ? (size_t)(a->cols * weights_mats) : 0;
    qk_status st = grow(ctx, (void **)&s->imatrix, &s->imatrix_cap, (means ? 2 : 1) * n * sizeof(float), 0);
    if (st == QK_OK && !s->error)
        st = allocate(ctx, QK_CUDA_ERROR_SUMS * (1 + QK_CUDA_ERROR_CTAS) * sizeof(double), 0, (void **)&s->error);
    if (st != QK_OK) return st;
    const float *w = weights ? s->imatrix : NULL, *m = means ? s->imatrix + n : NULL;
    if (w)
        QK_CHECK_CUDA(ctx, cudaMemcpyAsync(s->imatrix, weights, n * sizeof(float), cudaMemcpyHostToDevice, s->stream));
    if (m)
        QK_CHECK_CUDA(ctx,
                      cudaMemcpyAsync(s->imatrix + n, means, n * sizeof(float), cudaMemcpyHostToDevice, s->stream));
    double sums[QK_CUDA_ERROR_SUMS];
    QK_CHECK_CUDA(ctx, (cudaError_t)qk_cuda_quant_error((int)a->type, (int)a->src_type, a->src, a->dst, a->rows,
                                                        a->cols, w, m, w ? a->rows / weights_mats : 0,
                                                        s->error + QK_CUDA_ERROR_SUMS, s->error, s->stream));
    QK_CHECK_CUDA(ctx, cudaMemcpyAsync(sums, s->error, sizeof sums, cudaMemcpyDeviceToHost, s->stream));
    QK_CHECK_CUDA(ctx, cudaStreamSynchronize(s->stream));
    *out = (qk_quantize_error){sums[0], sums[1], sums[2], sums[3], sums[4]};
    return QK_OK;
}

static qk_status cuda_dequantize(qk_context *ctx, void *state, const qk_dequantize_args *a) {
    cuda_state *s = state;
    QK_CHECK_CUDA(ctx, cudaSetDevice(s->device));
    cudaStream_t stream = a->async ? (cudaStream_t)a->stream : s->stream;
    QK_CHECK_CUDA(
        ctx, (cudaError_t)qk_cuda_dequantize((int)a->type, (int)a->dst_type, a->src, a->dst, a->rows, a->cols, stream));
    if (!a->async) QK_CHECK_CUDA(ctx, cudaStreamSynchronize(stream));
    return QK_OK;
}

/* The backend's part of a MoE plan: the kernels' plan, made for the kernels' argument struct,
 * which is derived from the call's description once, here; the launch adds the operands to it. */
typedef struct cuda_moe_plan {
    qk_cuda_moe_args args;
    qk_cuda_moe_plan kernels;
} cuda_moe_plan;
_Static_assert(sizeof(cuda_moe_plan) <= QK_MOE_PLAN_OWN_BYTES, "the CUDA MoE plan must fit qk_moe_plan.own");

static void cuda_moe_plan_of(void *state, const qk_moe_args *a, qk_moe_plan *plan) {
    (void)state;
    cuda_moe_plan p;
    memset(&p, 0, sizeof p);
    p.args = (qk_cuda_moe_args){.kind = (int)a->kind,
                                .type = (int)a->type,
                                .x_type = (int)a->x_type,
                                .x_per_slot = a->x_per_slot,
                                .exact = a->exact,
                                .n_expert = a->n_expert,
                                .m = a->m,
                                .k = a->k,
                                .n_tokens = a->n_tokens,
                                .n_used = a->n_used};
    p.kernels = qk_cuda_moe_plan_for(&p.args);
    plan->args = a;
    plan->workspace = p.kernels.bytes;
    plan->workspace_query = p.kernels.bytes_any;
    memcpy(plan->own.bytes, &p, sizeof p);
}

/* Synchronous calls run on the context's stream and wait; asynchronous ones only enqueue. */
static qk_status cuda_moe(qk_context *ctx, void *state, const qk_moe_args *a) {
    cuda_state *s = state;
    assert(a->plan && a->plan->args == a && (!a->plan->workspace || a->workspace));
    const qk_format *f = qk_format_of(a->type);
    if (f->block_elems == 1 && a->k % 32)
        return qk_fail(ctx, QK_ERR_UNSUPPORTED, "cuda: %s weights need k a multiple of 32 (k = %lld)", f->name,
                       (long long)a->k);
    QK_CHECK_CUDA(ctx, cudaSetDevice(s->device));
    cudaStream_t stream = a->async ? (cudaStream_t)a->stream : s->stream;
    cuda_moe_plan p;
    memcpy(&p, a->plan->own.bytes, sizeof p);
    p.args.w = a->w, p.args.w_up = a->w_up, p.args.x = a->x, p.args.ids = a->ids;
    p.args.router = a->router, p.args.y = a->y, p.args.workspace = a->workspace;
    QK_CHECK_CUDA(ctx, (cudaError_t)qk_cuda_moe(&p.args, &p.kernels, stream));
    if (!a->async) QK_CHECK_CUDA(ctx, cudaStreamSynchronize(stream));
    return QK_OK;
}

/* ---- streaming ---------------------------------------------------------------------------- */

static qk_status cuda_host_alloc(qk_context *ctx, void *state, size_t bytes, void **host) {
    cuda_state *s = state;
    QK_CHECK_CUDA(ctx, cudaSetDevice(s->device));
    return allocate(ctx, bytes, 1, host);
}

static void cuda_host_free(void *state, void *host) {
    (void)state;
    cudaFreeHost(host);
}

/* Enqueues the whole step: upload, the scan, the scan's result back, the kernel, download. The
 * kernel runs even when the scan finds a bad value (knowing would cost a synchronization);
 * wait_queue then reports the value and the caller discards dst. */
static qk_status cuda_quantize_queued(qk_context *ctx, void *state, int queue, const qk_quantize_args *a) {
    cuda_state *s = state;
    cuda_queue *q = &s->queues[queue];
    if (q->busy) return qk_fail(ctx, QK_ERR_INVALID_ARG, "cuda: queue %d is busy: wait for it first", queue);
    QK_CHECK_CUDA(ctx, cudaSetDevice(s->device));
    const size_t src_bytes = (size_t)(a->rows * a->cols) * qk_float_type_size(a->src_type);
    const size_t dst_bytes = (size_t)a->rows * qk_type_row_bytes(a->type, a->cols);
    const size_t im_bytes = a->imatrix ? (size_t)(a->cols * a->imatrix_mats) * sizeof(float) : 0;
    const size_t scalar = sizeof *q->first_bad;
    qk_status st = grow(ctx, &q->src, &q->src_cap, src_bytes, 0);
    if (st == QK_OK) st = grow(ctx, &q->dst, &q->dst_cap, dst_bytes, 0);
    if (st == QK_OK) st = grow(ctx, (void **)&q->imatrix, &q->imatrix_cap, im_bytes, 0);
    if (st == QK_OK) st = grow(ctx, (void **)&q->imatrix_host, &q->imatrix_host_cap, im_bytes, 1);
    if (st != QK_OK) return st;
    for (int k = 0; k < 4; k++)
        if (!q->ev[k]) QK_CHECK_CUDA(ctx, cudaEventCreate(&q->ev[k]));
    if (im_bytes) memcpy(q->imatrix_host, a->imatrix, im_bytes);
    /* Busy from the first enqueued copy: after a failure part-way, wait_queue still waits. */
    *q->first_bad_host = ~0ull;
    q->step = *a;
    q->busy = 1;
    q->timed = 0;
    q->up_bytes = src_bytes + im_bytes;
    q->down_bytes = dst_bytes;
    QK_CHECK_CUDA(ctx, cudaEventRecord(q->ev[0], q->stream));
    QK_CHECK_CUDA(ctx, cudaMemcpyAsync(q->src, a->src, src_bytes, cudaMemcpyHostToDevice, q->stream));
    if (im_bytes)
        QK_CHECK_CUDA(ctx, cudaMemcpyAsync(q->imatrix, q->imatrix_host, im_bytes, cudaMemcpyHostToDevice, q->stream));
    QK_CHECK_CUDA(ctx, cudaEventRecord(q->ev[1], q->stream));
    QK_CHECK_CUDA(ctx, cudaMemsetAsync(q->first_bad, 0xff, scalar, q->stream));
    QK_CHECK_CUDA(
        ctx, (cudaError_t)qk_cuda_find_nonfinite((int)a->src_type, q->src, a->rows, a->cols, q->first_bad, q->stream));
    QK_CHECK_CUDA(ctx, cudaMemcpyAsync(q->first_bad_host, q->first_bad, scalar, cudaMemcpyDeviceToHost, q->stream));
    QK_CHECK_CUDA(ctx, (cudaError_t)qk_cuda_quantize((int)a->type, (int)a->src_type, q->src, q->dst, a->rows, a->cols,
                                                     im_bytes ? q->imatrix : NULL,
                                                     im_bytes ? a->rows / a->imatrix_mats : 0, q->stream));
    QK_CHECK_CUDA(ctx, cudaEventRecord(q->ev[2], q->stream));
    QK_CHECK_CUDA(ctx, cudaMemcpyAsync(a->dst, q->dst, dst_bytes, cudaMemcpyDeviceToHost, q->stream));
    QK_CHECK_CUDA(ctx, cudaEventRecord(q->ev[3], q->stream));
    q->timed = 1;
    return QK_OK;
}

/* A waited-for step's upload, kernel and download times, from its events, into ctx's times. */
static qk_status add_queue_times(qk_context *ctx, const cuda_queue *q) {
    float ms[3];
    for (int k = 0; k < 3; k++) QK_CHECK_CUDA(ctx, cudaEventElapsedTime(&ms[k], q->ev[k], q->ev[k + 1]));
    ctx->times.h2d += 1e-3 * ms[0];
    ctx->times.kernel += 1e-3 * ms[1];
    ctx->times.d2h += 1e-3 * ms[2];
    ctx->times.h2d_bytes += q->up_bytes;
    ctx->times.d2h_bytes += q->down_bytes;
    return QK_OK;
}

static qk_status cuda_wait_queue(qk_context *ctx, void *state, int queue) {
    cuda_state *s = state;
    cuda_queue *q = &s->queues[queue];
    int busy = q->busy;
    q->busy = 0;
    QK_CHECK_CUDA(ctx, cudaSetDevice(s->device));
    QK_CHECK_CUDA(ctx, cudaStreamSynchronize(q->stream));
    if (!busy) return QK_OK;
    /* a step that failed part-way is not timed */
    if (q->timed) {
        qk_status st = add_queue_times(ctx, q);
        if (st) return st;
    }
    if (*q->first_bad_host == ~0ull) return QK_OK;
    /* the step's own host copy of src holds the bad value */
    unsigned long long first = *q->first_bad_host;
    return qk_nonfinite_fail(ctx, &q->step, first,
                             (const char *)q->step.src + first * qk_float_type_size(q->step.src_type));
}

const qk_backend qk_backend_cuda = {
    .name = "cuda",
    .kind = QK_DEVICE_CUDA,
    .host_memory = 0,
    .device_count = cuda_device_count,
    .device_info = cuda_device_info,
    .open = cuda_open,
    .close = cuda_close,
    .why_not = cuda_why_not,
    .alloc = cuda_alloc,
    .free = cuda_free,
    .write = cuda_write,
    .read = cuda_read,
    .address = cuda_address,
    .quantize = cuda_quantize,
    .dequantize = cuda_dequantize,
    .quantize_error = cuda_quantize_error,
    .moe_plan = cuda_moe_plan_of,
    .moe = cuda_moe,
    .host_alloc = cuda_host_alloc,
    .host_free = cuda_host_free,
    .quantize_queued = cuda_quantize_queued,
    .wait_queue = cuda_wait_queue,
};
