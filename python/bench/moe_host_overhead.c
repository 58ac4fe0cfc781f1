/* The C side of the Python package's overhead benchmark (python/bench/moe_host_overhead.py): the
 * host time of one qk_cuda_moe_matmul_async call, the floor that qkern.moe_matmul's Python call
 * adds its own time to, on the 1-token decode shape of Qwen3.5-35B-A3B's experts: W[256][512][2048]
 * in Q4_K, one token, 8 experts used.
 *
 * Host time is what the calling thread spends enqueueing: rounds of BATCH calls are timed without
 * a synchronization inside them (the stream is drained between rounds, so the launch queue never
 * fills and blocks the caller). The same op is also timed on the GPU, launched call by call and
 * captured in CUDA graphs (one op per graph, as a decode step's graph replays it, and BATCH ops
 * per graph: the kernel time without launch gaps).
 *
 * usage: moe_host_overhead [ROUNDS]      prints one JSON object
 * build (scripts/gpu_python.sh): cc -O2 -std=c11 moe_host_overhead.c -I include -I CUDA/include
 *        -L DIR -l:libqkern.so.0 -L CUDA/lib64 -lcudart */
#define _POSIX_C_SOURCE 199309L
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qkern_cuda.h"

enum { N_EXPERT = 256, M = 512, K = 2048, N_USED = 8, BATCH = 100 };

#define CHECK_CUDA(call)                                                                                               \
    do {                                                                                                               \
        cudaError_t e_ = (call);                                                                                       \
        if (e_ != cudaSuccess) {                                                                                       \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_));                     \
            exit(1);                                                                                                   \
        }                                                                                                              \
    } while (0)
#define CHECK_QK(ctx, call)                                                                                            \
    do {                                                                                                               \
        qk_status s_ = (call);                                                                                         \
        if (s_ != QK_OK) {                                                                                             \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, qk_last_error(ctx));                         \
            exit(1);                                                                                                   \
        }                                                                                                              \
    } while (0)

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* median and minimum of n samples (sorted in place), in microseconds */
static void summarize(double *v, int n, double *median, double *min) {
    qsort(v, (size_t)n, sizeof *v, by_value);
    *median = 1e6 * v[n / 2];
    *min = 1e6 * v[0];
}

/* GPU time of one launch of `graph` (the mean of `reps`), in microseconds */
static double graph_us(cudaGraphExec_t graph, cudaStream_t stream, int reps) {
    cudaEvent_t a, b;
    CHECK_CUDA(cudaEventCreate(&a));
    CHECK_CUDA(cudaEventCreate(&b));
    CHECK_CUDA(cudaGraphLaunch(graph, stream));
    CHECK_CUDA(cudaEventRecord(a, stream));
    for (int i = 0; i < reps; i++) CHECK_CUDA(cudaGraphLaunch(graph, stream));
    CHECK_CUDA(cudaEventRecord(b, stream));
    CHECK_CUDA(cudaEventSynchronize(b));
    float ms;
    CHECK_CUDA(cudaEventElapsedTime(&ms, a, b));
    CHECK_CUDA(cudaEventDestroy(a));
    CHECK_CUDA(cudaEventDestroy(b));
    return 1e3 * ms / reps;
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 50;
    if (rounds < 1) rounds = 1;
    qk_context_params p = qk_context_default_params();
    p.device = "cuda:0";
    qk_context *ctx;
    CHECK_QK(NULL, qk_context_create(&p, &ctx));
    cudaStream_t stream;
    CHECK_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));

    /* weights: one expert quantized on the device, copied into all 256 (their values do not
     * change the time; their bytes are real Q4_K blocks) */
    size_t expert_bytes = qk_type_row_bytes(QK_TYPE_Q4_K, K) * M;
    float *host = malloc(sizeof(float) * M * K);
    if (!host) return 1;
    srand(1);
    for (int i = 0; i < M * K; i++) host[i] = (float)rand() / RAND_MAX - 0.5f;
    float *wf, *x, *y;
    uint8_t *w;
    int32_t *ids;
    CHECK_CUDA(cudaMalloc((void **)&wf, sizeof(float) * M * K));
    CHECK_CUDA(cudaMalloc((void **)&w, expert_bytes * N_EXPERT));
    CHECK_CUDA(cudaMalloc((void **)&x, sizeof(float) * K));
    CHECK_CUDA(cudaMalloc((void **)&y, sizeof(float) * N_USED * M));
    CHECK_CUDA(cudaMalloc((void **)&ids, sizeof(int32_t) * N_USED));
    CHECK_CUDA(cudaMemcpy(wf, host, sizeof(float) * M * K, cudaMemcpyHostToDevice));
    CHECK_CUDA(cudaMemcpy(x, host, sizeof(float) * K, cudaMemcpyHostToDevice));
    const int32_t used[N_USED] = {3, 17, 42, 99, 128, 160, 201, 250};
    CHECK_CUDA(cudaMemcpy(ids, used, sizeof used, cudaMemcpyHostToDevice));
    free(host);
    qk_quantize_desc q = qk_quantize_default_desc();
    q.type = QK_TYPE_Q4_K;
    q.src_type = QK_TYPE_F32;
    q.rows = M;
    q.cols = K;
    q.src = qk_dev(wf, sizeof(float) * M * K);
    q.dst = qk_dev(w, expert_bytes);
    CHECK_QK(ctx, qk_cuda_quantize_async(ctx, &q, stream));
    for (int e = 1; e < N_EXPERT; e++)
        CHECK_CUDA(cudaMemcpyAsync(w + e * expert_bytes, w, expert_bytes, cudaMemcpyDeviceToDevice, stream));

    qk_moe_desc d = qk_moe_default_desc();
    d.type = QK_TYPE_Q4_K;
    d.x_type = QK_TYPE_F32;
    d.n_expert = N_EXPERT;
    d.m = M;
    d.k = K;
    d.n_tokens = 1;
    d.n_used = N_USED;
    d.w = qk_dev(w, expert_bytes * N_EXPERT);
    d.x = qk_dev(x, sizeof(float) * K);
    d.ids = qk_dev(ids, sizeof(int32_t) * N_USED);
    d.y = qk_dev(y, sizeof(float) * N_USED * M);
    size_t ws_bytes = 0;
    CHECK_QK(ctx, qk_moe_workspace_size(ctx, &d, &ws_bytes));
    void *ws = NULL;
    if (ws_bytes) CHECK_CUDA(cudaMalloc(&ws, ws_bytes));
    d.workspace = qk_dev(ws, ws_bytes);
    for (int i = 0; i < 20; i++) CHECK_QK(ctx, qk_cuda_moe_matmul_async(ctx, &d, stream));
    CHECK_CUDA(cudaStreamSynchronize(stream));

    double *call = malloc(sizeof(double) * rounds), *query = malloc(sizeof(double) * rounds);
    double *launch = malloc(sizeof(double) * rounds);
    if (!call || !query || !launch) return 1;
    for (int r = 0; r < rounds; r++) {
        double t0 = seconds();
        for (int i = 0; i < BATCH; i++) qk_cuda_moe_matmul_async(ctx, &d, stream);
        call[r] = (seconds() - t0) / BATCH;
        CHECK_CUDA(cudaStreamSynchronize(stream));
        size_t bytes;
        t0 = seconds();
        for (int i = 0; i < BATCH; i++) qk_moe_workspace_size(ctx, &d, &bytes);
        query[r] = (seconds() - t0) / BATCH;
    }

    /* the op launched call by call, on the GPU: BATCH calls between two events */
    cudaEvent_t a, b;
    CHECK_CUDA(cudaEventCreate(&a));
    CHECK_CUDA(cudaEventCreate(&b));
    CHECK_CUDA(cudaEventRecord(a, stream));
    for (int i = 0; i < BATCH; i++) CHECK_QK(ctx, qk_cuda_moe_matmul_async(ctx, &d, stream));
    CHECK_CUDA(cudaEventRecord(b, stream));
    CHECK_CUDA(cudaEventSynchronize(b));
    float stream_ms;
    CHECK_CUDA(cudaEventElapsedTime(&stream_ms, a, b));

    /* captured: one op per graph, and BATCH ops per graph */
    cudaGraph_t g1, gn;
    cudaGraphExec_t e1, en;
    CHECK_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
    CHECK_QK(ctx, qk_cuda_moe_matmul_async(ctx, &d, stream));
    CHECK_CUDA(cudaStreamEndCapture(stream, &g1));
    CHECK_CUDA(cudaGraphInstantiate(&e1, g1, 0));
    CHECK_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
    for (int i = 0; i < BATCH; i++) CHECK_QK(ctx, qk_cuda_moe_matmul_async(ctx, &d, stream));
    CHECK_CUDA(cudaStreamEndCapture(stream, &gn));
    CHECK_CUDA(cudaGraphInstantiate(&en, gn, 0));
    for (int r = 0; r < rounds; r++) {
        double t0 = seconds();
        for (int i = 0; i < BATCH; i++) cudaGraphLaunch(e1, stream);
        launch[r] = (seconds() - t0) / BATCH;
        CHECK_CUDA(cudaStreamSynchronize(stream));
    }
    double g1_us = graph_us(e1, stream, BATCH), gn_us = graph_us(en, stream, 20) / BATCH;

    double call_med, call_min, query_med, query_min, launch_med, launch_min;
    summarize(call, rounds, &call_med, &call_min);
    summarize(query, rounds, &query_med, &query_min);
    summarize(launch, rounds, &launch_med, &launch_min);
    qk_device_info info;
    CHECK_QK(ctx, qk_context_device(ctx, &info));
    printf(
        "{\"device\": \"%s\", \"shape\": \"Q4_K W[%d][%d][%d], 1 token, %d used\", \"calls_per_round\": %d, "
        "\"rounds\": %d, \"workspace_bytes\": %zu,\n"
        " \"c_call_host_us\": %.3f, \"c_call_host_us_min\": %.3f, \"c_workspace_query_host_us\": %.3f,\n"
        " \"c_stream_gpu_us_per_op\": %.3f, \"c_graph1_launch_host_us\": %.3f, \"c_graph1_launch_host_us_min\": %.3f,\n"
        " \"c_graph1_gpu_us_per_replay\": %.3f, \"c_graph%d_gpu_us_per_op\": %.3f}\n",
        info.name, N_EXPERT, M, K, N_USED, BATCH, rounds, ws_bytes, call_med, call_min, query_med,
        1e3 * stream_ms / BATCH, launch_med, launch_min, g1_us, BATCH, gn_us);
    (void)query_min;
    cudaGraphExecDestroy(e1);
    cudaGraphExecDestroy(en);
    cudaGraphDestroy(g1);
    cudaGraphDestroy(gn);
    cudaFree(wf), cudaFree(w), cudaFree(x), cudaFree(y), cudaFree(ids), cudaFree(ws);
    cudaStreamDestroy(stream);
    qk_context_destroy(ctx);
    free(call), free(query), free(launch);
    return 0;
}
