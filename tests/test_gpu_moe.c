/* The MoE matmul on a CUDA device against the float64 reference: the case matrix of moe_harness
 * on every type (with QK_TEST_LARGE=1 the full one: every token count of the issue at the model
 * shapes, both paths); the asynchronous calls of qkern_cuda.h on raw device pointers with a
 * workspace of the size the query gives; an asynchronous call captured in a CUDA graph, which
 * proves it neither synchronizes nor allocates; and an id out of range in an asynchronous call,
 * which gives NaN for its slot (its token, for the weighted sum) and nothing worse. Without a
 * CUDA device the test says it skipped (exit 77, which ctest reports as skipped). */
#include "moe_harness.h"
#include "qkern_cuda.h"

#ifdef QK_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

#define SKIP 77

static qk_context *cpu, *gpu;
static moe_harness h;

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

int main(void) {
    const uint64_t seed = tu_seed();
    qk_context_params p = qk_context_default_params();
    p.device = "cuda:0";
    if (qk_context_create(&p, &gpu) != QK_OK) {
        printf("SKIP: no CUDA device (%s)\n", qk_last_error(NULL));
        return SKIP;
    }
    p.device = "cpu";
    if (qk_context_create(&p, &cpu) != QK_OK) return fprintf(stderr, "cpu: %s\n", qk_last_error(NULL)), 1;
    qk_device_info di;
    if (qk_context_device(gpu, &di) == QK_OK)
        printf("device: %s, %s, %d SMs, %.1f GiB\n", di.id, di.name, di.compute_units,
               (double)di.memory_bytes / (1u << 30));
    moe_harness_init(&h, gpu, cpu, seed);

    const int large = getenv("QK_TEST_LARGE") != NULL;
    printf("case matrix: %s\n", large ? "full (QK_TEST_LARGE)"
                                      : "model shapes at a few token counts; set "
                                        "QK_TEST_LARGE=1 for every token count");
    moe_run_matrix(&h, large ? MOE_LEVEL_FULL : MOE_LEVEL_GPU);
#ifdef QK_HAVE_CUDA
    cudaStream_t stream = NULL;
    CUDA_OK(cudaStreamCreate(&stream));
    test_async_on_device_pointers(stream);
    test_async_calls_capture_in_a_graph();
    test_async_id_out_of_range_gives_nan(stream);
    if (stream) cudaStreamDestroy(stream);
#endif

    tu_failed += h.failures;
    moe_harness_free(&h);
    qk_context_destroy(cpu);
    qk_context_destroy(gpu);
    return tu_finish();
}
