/* The MoE matmul on a GPU device against the float64 reference. The device is argv[1] ("cuda:0"
 * when none is given; ctest also runs it as "vulkan:0"); where that device is absent the test
 * says so and skips (exit 77, which ctest reports as skipped).
 *
 * On every device: the case matrix of moe_harness on every type (with QK_TEST_LARGE=1 the full
 * one: every token count of the issue at the model shapes, both paths; on a CPU implementation
 * of Vulkan, lavapipe, the small cases only), and every operand inside one buffer at offsets
 * that are no multiple of any alignment. On a CUDA device also: the asynchronous calls of
 * qkern_cuda.h on raw device pointers with a workspace of the size the query gives; an
 * asynchronous call captured in a CUDA graph, which proves it neither synchronizes nor
 * allocates; and an id out of range in an asynchronous call, which gives NaN for its slot (its
 * token, for the weighted sum) and nothing worse. */
#include "internal.h"
#include "moe_harness.h"
#include "qkern_cuda.h"

#ifdef QK_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

#include <string.h>

#define SKIP 77

static qk_context *cpu, *gpu;
static moe_harness h;

/* Where each operand of a packed case lies in its one buffer. */
typedef struct packed_layout {
    size_t w, w_up, x, ids, router, y, workspace, bytes;
} packed_layout;

static size_t place(size_t *at, size_t bytes, size_t align, size_t residue) {
    size_t off = (*at + align - 1) / align * align + residue;
    *at = off + bytes;
    return off;
}

typedef enum packed_mode {
    /* through the public API, each operand at an offset that is no multiple of 4 bytes beyond
     * what its element needs: weights at odd bytes, F16/BF16 activations at half a word */
    PACKED_UNALIGNED,
    /* through the backend's moe hook, as the runtime calls it for an asynchronous call (which
     * cannot check ids on the host), with an id too large and a negative one */
    PACKED_BAD_IDS,
} packed_mode;

/* Few tokens per expert (the vector path) and many (the tiled path) of each entry point. */
static const moe_case packed_cases[] = {
    {MOE_MATMUL, 8, 40, 512, 2, 4, QK_TYPE_F16, 0, MOE_UNIFORM},
    {MOE_GATE_UP, 4, 36, 256, 40, 2, QK_TYPE_F16, 1, MOE_UNIFORM},
    {MOE_WEIGHTED_SUM, 6, 33, 256, 48, 3, QK_TYPE_BF16, 0, MOE_FEW},
    {MOE_WEIGHTED_SUM, 6, 70, 512, 3, 3, QK_TYPE_F32, 1, MOE_UNIFORM},
    {MOE_GATE_UP, 3, 20, 256, 2, 2, QK_TYPE_BF16, 0, MOE_UNIFORM},
    {MOE_MATMUL, 5, 48, 256, 33, 2, QK_TYPE_F32, 1, MOE_UNIFORM},
};
static const qk_type packed_types[] = {QK_TYPE_Q4_K, QK_TYPE_Q5_0, QK_TYPE_MXFP4, QK_TYPE_IQ2_XXS, QK_TYPE_F16};
#define N_PACKED_CASES (sizeof packed_cases / sizeof packed_cases[0])
#define N_PACKED_TYPES (sizeof packed_types / sizeof packed_types[0])

/* The backend's arguments for a case whose operands are all in `buf` (NULL: the shapes only).
 * The runtime's checks are skipped: the case's shapes are valid by construction. */
static qk_moe_args backend_args(const moe_case *c, qk_type type, qk_buffer *buf, const packed_layout *l,
                                const moe_inputs *in) {
    qk_moe_args a;
    memset(&a, 0, sizeof a);
    a.kind = (qk_moe_kind)c->call;
    a.type = type, a.x_type = c->x_type;
    a.n_expert = c->n_expert, a.m = c->m, a.k = c->k, a.n_tokens = c->n_tokens, a.n_used = c->n_used;
    a.x_per_slot = c->x_per_slot;
    if (!buf) return a; /* the shapes only: the workspace query reads no pointer */
    void *(*at)(void *, size_t) = gpu->backend->address;
    a.w = at(buf->mem, l->w);
    a.w_up = c->call == MOE_GATE_UP ? at(buf->mem, l->w_up) : NULL;
    a.x = at(buf->mem, l->x);
    a.ids = in->ids ? at(buf->mem, l->ids) : NULL;
    a.router = in->router ? at(buf->mem, l->router) : NULL;
    a.y = at(buf->mem, l->y);
    return a;
}

static void packed_case(const moe_case *c, qk_type type, packed_mode mode) {
    moe_pool pool;
    moe_weights w;
    moe_inputs in;
    if (!moe_pool_make(&h, type, c->k, 64, &pool)) return;
    if (!moe_weights_make(&h, &pool, c->n_expert, c->m, 1, &w)) {
        moe_pool_free(&pool);
        return;
    }
    moe_inputs_make(&h, c, &in);
    const int64_t slots = c->n_tokens * c->n_used;
    if (mode == PACKED_BAD_IDS) {
        in.ids[slots / 2] = (int32_t)(c->n_expert + 7);
        in.ids[slots - 1] = -2;
    }
    const size_t es = c->x_type == QK_TYPE_F32 ? 4 : 2;
    const int odd = mode == PACKED_UNALIGNED;
    packed_layout l = {0};
    size_t at = 0;
    l.w = place(&at, w.bytes, 16, odd ? 1 : 0);
    l.w_up = place(&at, c->call == MOE_GATE_UP ? w.bytes : 0, 16, odd ? 7 : 0);
    l.x = place(&at, in.x_bytes, 16, odd ? (es == 4 ? 4 : 6) : 0);
    l.ids = place(&at, in.ids_bytes, 16, odd ? 4 : 0);
    l.router = place(&at, in.router_bytes, 16, odd ? 8 : 0);
    l.y = place(&at, in.y_bytes, 16, odd ? 12 : 0);
    qk_moe_args a = backend_args(c, type, NULL, &l, &in);
    qk_moe_plan plan;
    memset(&plan, 0, sizeof plan);
    if (mode == PACKED_BAD_IDS) gpu->backend->moe_plan(gpu->state, &a, &plan);
    const size_t ws = plan.workspace;
    l.workspace = place(&at, ws, 256, 0);
    l.bytes = at;

    char name[160];
    moe_case_name(c, name, sizeof name);
    const char *label =
        mode == PACKED_BAD_IDS ? "ids out of range (NaN expected there)" : "operands at unaligned offsets";
    qk_buffer *buf = NULL;
    qk_status st = qk_buffer_create(gpu, l.bytes, &buf);
    CHECK(st == QK_OK, "%s: a buffer of %zu bytes: %s", label, l.bytes, qk_last_error(gpu));
    float *y = tu_poisoned(in.y_bytes);
    if (st == QK_OK) st = qk_buffer_write(buf, l.w, w.w, w.bytes);
    if (st == QK_OK && c->call == MOE_GATE_UP) st = qk_buffer_write(buf, l.w_up, w.w_up, w.bytes);
    if (st == QK_OK) st = qk_buffer_write(buf, l.x, in.x, in.x_bytes);
    if (st == QK_OK && in.ids) st = qk_buffer_write(buf, l.ids, in.ids, in.ids_bytes);
    if (st == QK_OK && in.router) st = qk_buffer_write(buf, l.router, in.router, in.router_bytes);
    if (st == QK_OK) st = qk_buffer_write(buf, l.y, y, in.y_bytes);
    if (st == QK_OK && mode == PACKED_UNALIGNED) {
        qk_moe_desc d = moe_desc_for(&in, &w, y);
        d.w = qk_buf(buf, l.w, w.bytes);
        if (c->call == MOE_GATE_UP) d.w_up = qk_buf(buf, l.w_up, w.bytes);
        d.x = qk_buf(buf, l.x, in.x_bytes);
        if (in.ids) d.ids = qk_buf(buf, l.ids, in.ids_bytes);
        if (in.router) d.router = qk_buf(buf, l.router, in.router_bytes);
        d.y = qk_buf(buf, l.y, in.y_bytes);
        st = moe_run(gpu, c->call, &d);
    } else if (st == QK_OK) {
        a = backend_args(c, type, buf, &l, &in);
        a.workspace = ws ? gpu->backend->address(buf->mem, l.workspace) : NULL;
        a.plan = &plan; /* made for `a` above, from the same shapes */
        st = gpu->backend->moe(gpu, gpu->state, &a);
    }
    if (st == QK_OK) st = qk_buffer_read(buf, l.y, y, in.y_bytes);
    CHECK(st == QK_OK, "%s: %s %s: %s", label, qk_type_name(type), name, qk_last_error(gpu));
    if (st == QK_OK) moe_check(&h, &in, &w, y, MOE_CHECK_ALL, label);
    free(y);
    qk_buffer_destroy(buf);
    moe_inputs_free(&in);
    moe_weights_free(&w);
    moe_pool_free(&pool);
}

/* Every operand inside one buffer, at offsets no binding or vector load is aligned to: the
 * results are the reference's. */
static void test_operands_at_unaligned_offsets_in_one_buffer(void) {
    const int before = h.failures + tu_failed;
    for (size_t i = 0; i < N_PACKED_CASES; i++)
        for (size_t t = 0; t < N_PACKED_TYPES; t++)
            packed_case(&packed_cases[i], packed_types[(i + t) % N_PACKED_TYPES], PACKED_UNALIGNED);
    printf("operands at unaligned offsets in one buffer: %s\n", h.failures + tu_failed == before ? "ok" : "FAILED");
}

/* The promise of backend.h that every asynchronous call relies on: an id out of range (too
 * large, or negative) reads no weights and makes its slot NaN (its token, for the weighted sum);
 * every other output is still the reference's. Asked of the backend's hook directly, which is
 * how the runtime passes on an asynchronous call, on every device (on CUDA also through
 * qkern_cuda.h below). */
static void test_backend_id_out_of_range_gives_nan(void) {
    const int before = h.failures + tu_failed;
    for (size_t i = 0; i < N_PACKED_CASES; i++)
        packed_case(&packed_cases[i], packed_types[i % N_PACKED_TYPES], PACKED_BAD_IDS);
    printf("ids out of range at the backend: %s\n", h.failures + tu_failed == before ? "NaN where expected" : "FAILED");
}

#ifdef QK_HAVE_CUDA
#define CUDA_OK(call) CHECK((call) == cudaSuccess, "%s: %s", #call, cudaGetErrorString(cudaGetLastError()))

/* A case's operands copied to memory from cudaMalloc, as an engine holds its tensors. */
typedef struct device_case {
    moe_pool pool;
    moe_weights w;
    moe_inputs in;
    void *w_dev, *w_up_dev, *x_dev, *ids_dev, *router_dev, *y_dev, *workspace;
    size_t workspace_bytes;
    float *y; /* the result, downloaded */
    qk_moe_desc d;
} device_case;

static void *device_copy(const void *host, size_t bytes) {
    void *p = NULL;
    if (!bytes) return NULL;
    CUDA_OK(cudaMalloc(&p, bytes));
    if (p && host) CUDA_OK(cudaMemcpy(p, host, bytes, cudaMemcpyHostToDevice));
    return p;
}

static int device_case_make(device_case *dc, const moe_case *c, qk_type type) {
    memset(dc, 0, sizeof *dc);
    if (!moe_pool_make(&h, type, c->k, 256, &dc->pool)) return 0;
    moe_weights_make(&h, &dc->pool, c->n_expert, c->m, 1, &dc->w);
    moe_inputs_make(&h, c, &dc->in);
    dc->w_dev = device_copy(dc->w.w, dc->w.bytes);
    dc->w_up_dev = c->call == MOE_GATE_UP ? device_copy(dc->w.w_up, dc->w.bytes) : NULL;
    dc->x_dev = device_copy(dc->in.x, dc->in.x_bytes);
    dc->ids_dev = device_copy(dc->in.ids, dc->in.ids_bytes);
    dc->router_dev = device_copy(dc->in.router, dc->in.router_bytes);
    dc->y_dev = device_copy(NULL, dc->in.y_bytes);
    dc->y = tu_poisoned(dc->in.y_bytes);
    qk_moe_desc d = moe_desc_for(&dc->in, &dc->w, dc->y);
    d.w = qk_dev(dc->w_dev, dc->w.bytes);
    if (c->call == MOE_GATE_UP) d.w_up = qk_dev(dc->w_up_dev, dc->w.bytes);
    d.x = qk_dev(dc->x_dev, dc->in.x_bytes);
    if (dc->ids_dev) d.ids = qk_dev(dc->ids_dev, dc->in.ids_bytes);
    if (dc->router_dev) d.router = qk_dev(dc->router_dev, dc->in.router_bytes);
    d.y = qk_dev(dc->y_dev, dc->in.y_bytes);
    CHECK(qk_moe_workspace_size(gpu, &d, &dc->workspace_bytes) == QK_OK, "workspace size: %s", qk_last_error(gpu));
    dc->workspace = device_copy(NULL, dc->workspace_bytes);
    if (dc->workspace) d.workspace = qk_dev(dc->workspace, dc->workspace_bytes);
    dc->d = d;
    return 1;
}

static void device_case_free(device_case *dc) {
    void *dev[] = {dc->w_dev, dc->w_up_dev, dc->x_dev, dc->ids_dev, dc->router_dev, dc->y_dev, dc->workspace};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) cudaFree(dev[i]);
    free(dc->y);
    moe_inputs_free(&dc->in);
    moe_weights_free(&dc->w);
    moe_pool_free(&dc->pool);
}

static qk_status run_async(moe_call call, const qk_moe_desc *d, cudaStream_t stream) {
    switch (call) {
    case MOE_MATMUL: return qk_cuda_moe_matmul_async(gpu, d, stream);
    case MOE_GATE_UP: return qk_cuda_moe_gate_up_async(gpu, d, stream);
    case MOE_WEIGHTED_SUM: return qk_cuda_moe_weighted_sum_async(gpu, d, stream);
    }
    return QK_ERR_INVALID_ARG;
}

static void poison_y(device_case *dc, cudaStream_t stream) {
    CUDA_OK(cudaMemsetAsync(dc->y_dev, 0xA5, dc->in.y_bytes, stream));
}

static void download_y(device_case *dc, cudaStream_t stream) {
    CUDA_OK(cudaStreamSynchronize(stream));
    CUDA_OK(cudaMemcpy(dc->y, dc->y_dev, dc->in.y_bytes, cudaMemcpyDeviceToHost));
}

/* Few tokens per expert (the vector path) and many (the tiled path) of each entry point. */
static const moe_case async_cases[] = {
    {MOE_MATMUL, 32, 96, 1024, 3, 4, QK_TYPE_F16, 0, MOE_UNIFORM},
    {MOE_MATMUL, 8, 200, 512, 300, 2, QK_TYPE_BF16, 1, MOE_FEW},
    {MOE_GATE_UP, 32, 64, 1024, 5, 8, QK_TYPE_F32, 0, MOE_UNIFORM},
    {MOE_GATE_UP, 4, 136, 512, 256, 2, QK_TYPE_F16, 0, MOE_UNIFORM},
    {MOE_WEIGHTED_SUM, 32, 128, 512, 2, 8, QK_TYPE_BF16, 1, MOE_UNIFORM},
    {MOE_WEIGHTED_SUM, 8, 72, 1024, 400, 4, QK_TYPE_F32, 1, MOE_UNIFORM},
};
static const qk_type async_types[] = {QK_TYPE_Q4_K, QK_TYPE_Q8_0, QK_TYPE_IQ2_XXS, QK_TYPE_MXFP4, QK_TYPE_Q6_K};
#define N_ASYNC_CASES (sizeof async_cases / sizeof async_cases[0])
#define N_ASYNC_TYPES (sizeof async_types / sizeof async_types[0])

/* The asynchronous calls on cudaMalloc'd operands and workspace, on a stream of the caller's,
 * give the reference's result; host memory and a missing workspace are refused up front. */
static void test_async_on_device_pointers(cudaStream_t stream) {
    const int before = h.failures + tu_failed;
    for (size_t i = 0; i < N_ASYNC_CASES; i++) {
        device_case dc;
        if (!device_case_make(&dc, &async_cases[i], async_types[i % N_ASYNC_TYPES])) continue;
        poison_y(&dc, stream);
        qk_status st = run_async(dc.in.c.call, &dc.d, stream);
        CHECK(st == QK_OK, "async %s: %s", qk_type_name(dc.pool.type), qk_last_error(gpu));
        download_y(&dc, stream);
        if (st == QK_OK) moe_check(&h, &dc.in, &dc.w, dc.y, MOE_CHECK_BUDGET, "async");
        qk_moe_desc d = dc.d;
        d.x = qk_host(dc.in.x, dc.in.x_bytes);
        CHECK(run_async(dc.in.c.call, &d, stream) == QK_ERR_INVALID_ARG, "an async call took host memory");
        if (dc.workspace_bytes) {
            d = dc.d;
            d.workspace = (qk_mem){0};
            CHECK(run_async(dc.in.c.call, &d, stream) == QK_ERR_INVALID_ARG && strstr(qk_last_error(gpu), "workspace"),
                  "an async call without its workspace: %s", qk_last_error(gpu));
        }
        device_case_free(&dc);
    }
    printf("async calls on device pointers: %s\n", h.failures + tu_failed == before ? "ok" : "FAILED");
}

/* Each entry point captured in a CUDA graph on a non-default stream (global capture mode: any
 * synchronization or allocation inside the call would invalidate the capture), then the graph
 * launched twice: both launches give the reference's result. */
static void test_async_calls_capture_in_a_graph(void) {
    const int before = h.failures + tu_failed;
    cudaStream_t stream = NULL;
    CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    for (size_t i = 0; i < N_ASYNC_CASES && stream; i++) {
        device_case dc;
        if (!device_case_make(&dc, &async_cases[i], async_types[(i + 1) % N_ASYNC_TYPES])) continue;
        cudaGraph_t graph = NULL;
        cudaGraphExec_t exec = NULL;
        CUDA_OK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
        qk_status st = run_async(dc.in.c.call, &dc.d, stream);
        cudaError_t end = cudaStreamEndCapture(stream, &graph);
        CHECK(st == QK_OK, "captured %s: %s", qk_type_name(dc.pool.type), qk_last_error(gpu));
        CHECK(end == cudaSuccess, "%s: the capture of %s broke (a synchronization or allocation inside?): %s",
              qk_type_name(dc.pool.type), async_cases[i].call == MOE_MATMUL ? "matmul" : "a fused call",
              cudaGetErrorString(end));
        if (st == QK_OK && end == cudaSuccess) {
            CUDA_OK(cudaGraphInstantiateWithFlags(&exec, graph, 0));
            for (int launch = 0; launch < 2 && exec; launch++) {
                poison_y(&dc, stream);
                CUDA_OK(cudaGraphLaunch(exec, stream));
                download_y(&dc, stream);
                moe_check(&h, &dc.in, &dc.w, dc.y, MOE_CHECK_BUDGET, launch ? "graph, second launch" : "graph");
            }
        }
        if (exec) cudaGraphExecDestroy(exec);
        if (graph) cudaGraphDestroy(graph);
        device_case_free(&dc);
    }
    if (stream) cudaStreamDestroy(stream);
    printf("async calls captured in a CUDA graph: %s\n", h.failures + tu_failed == before ? "ok" : "FAILED");
}

/* An asynchronous call cannot check ids on the host: an id out of range (too large, or
 * negative) reads no weights and makes its slot NaN (its token, for the weighted sum); every
 * other output is still right and the stream stays healthy. */
static void test_async_id_out_of_range_gives_nan(cudaStream_t stream) {
    const int before = h.failures + tu_failed;
    for (size_t i = 0; i < N_ASYNC_CASES; i++) {
        device_case dc;
        if (!device_case_make(&dc, &async_cases[i], async_types[(i + 2) % N_ASYNC_TYPES])) continue;
        const moe_case *c = &dc.in.c;
        const int64_t slots = c->n_tokens * c->n_used;
        dc.in.ids[slots / 2] = (int32_t)(c->n_expert + 7);
        dc.in.ids[slots - 1] = -2;
        CUDA_OK(cudaMemcpy(dc.ids_dev, dc.in.ids, dc.in.ids_bytes, cudaMemcpyHostToDevice));
        poison_y(&dc, stream);
        qk_status st = run_async(c->call, &dc.d, stream);
        CHECK(st == QK_OK, "async with a bad id: %s", qk_last_error(gpu));
        download_y(&dc, stream);
        if (st == QK_OK) moe_check(&h, &dc.in, &dc.w, dc.y, MOE_CHECK_BUDGET, "bad id (NaN expected there)");
        device_case_free(&dc);
    }
    printf("async ids out of range: %s\n", h.failures + tu_failed == before ? "NaN where expected" : "FAILED");
}
#endif

/* A CPU implementation of Vulkan (mesa's lavapipe) runs the small cases only: the model shapes
 * at hundreds of tokens take it minutes per type. */
static int is_cpu_driver(const qk_device_info *di) { return strstr(di->name, "llvmpipe") != NULL; }

int main(int argc, char **argv) {
    const uint64_t seed = tu_seed();
    const char *device = argc > 1 ? argv[1] : "cuda:0";
    qk_context_params p = qk_context_default_params();
    p.device = device;
    if (qk_context_create(&p, &gpu) != QK_OK) {
        printf("SKIP: no device %s (%s)\n", device, qk_last_error(NULL));
        return SKIP;
    }
    p.device = "cpu";
    if (qk_context_create(&p, &cpu) != QK_OK) return fprintf(stderr, "cpu: %s\n", qk_last_error(NULL)), 1;
    qk_device_info di;
    memset(&di, 0, sizeof di);
    if (qk_context_device(gpu, &di) == QK_OK)
        printf("device: %s, %s, %d compute units, %.1f GiB\n", di.id, di.name, di.compute_units,
               (double)di.memory_bytes / (1u << 30));
    moe_harness_init(&h, gpu, cpu, seed);

    const int large = getenv("QK_TEST_LARGE") != NULL, small = !large && is_cpu_driver(&di);
    printf("case matrix: %s\n", large   ? "full (QK_TEST_LARGE)"
                                : small ? "small cases only (a CPU driver); set QK_TEST_LARGE=1 for all"
                                        : "model shapes at a few token counts; set "
                                          "QK_TEST_LARGE=1 for every token count");
    /* CUDA's kernels for few tokens quantize the activations to 8 bits unless asked not to: the
     * matrix at the default precision meets that path's bound, and its small cases again at the
     * exact precision meet the exact one */
    if (di.kind == QK_DEVICE_CUDA) h.tolerance_quantized = MOE_TOLERANCE_8BIT;
    printf("precision: default (quantized weights within %g)\n", h.tolerance_quantized);
    moe_run_matrix(&h, large ? MOE_LEVEL_FULL : small ? MOE_LEVEL_UNIT : MOE_LEVEL_GPU);
    if (di.kind == QK_DEVICE_CUDA) {
        printf("precision: exact (within %g)\n", MOE_TOLERANCE);
        h.precision = QK_MOE_PRECISION_EXACT;
        moe_run_matrix(&h, MOE_LEVEL_UNIT);
        h.precision = QK_MOE_PRECISION_DEFAULT;
    }
    test_operands_at_unaligned_offsets_in_one_buffer();
    test_backend_id_out_of_range_gives_nan();
#ifdef QK_HAVE_CUDA
    if (di.kind == QK_DEVICE_CUDA) {
        cudaStream_t stream = NULL;
        CUDA_OK(cudaStreamCreate(&stream));
        test_async_on_device_pointers(stream);
        test_async_calls_capture_in_a_graph();
        test_async_id_out_of_range_gives_nan(stream);
        if (stream) cudaStreamDestroy(stream);
    }
#endif

    tu_failed += h.failures;
    moe_harness_free(&h);
    qk_context_destroy(cpu);
    qk_context_destroy(gpu);
    return tu_finish();
}
