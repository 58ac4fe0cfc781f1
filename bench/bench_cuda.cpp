// Quantize and dequantize throughput per type on a CUDA device, with the ceiling measured in
// the same run: a device-to-device copy. Data stay in device memory (qk_buffer) and the
// kernels are enqueued with the asynchronous calls of qkern_cuda.h, timed by CUDA events
// around a batch of launches: kernel time, without the per-call input scan and
// synchronization of qk_quantize. Counters: GB/s of input and of output, weights/s, and
// "of_copy" = (bytes read + written) / time over the copy's (bytes read + written) / time.
#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "bench_types.h"
#include "qkern_cuda.h"

namespace {

constexpr int64_t kRows = 8192, kCols = 4096; // 33.5 M weights: far beyond L2

constexpr int kBatch = 10; // launches between two events

struct Fixture {
    qk_context *ctx = nullptr;
    qk_buffer *src = nullptr, *q = nullptr, *out = nullptr;
    float *im_dev = nullptr; // the imatrix in device memory, as the async call takes it
    std::vector<float> im;
    double copy_gbps = 0; // (read + write) GB/s of the device-to-device copy, measured first
    Fixture() : im(kCols) {
        qk_context_params p = qk_context_default_params();
        p.device = "cuda:0";
        if (qk_context_create(&p, &ctx) != QK_OK) return;
        const size_t n = size_t(kRows * kCols);
        std::vector<uint16_t> x(n);
        std::mt19937_64 rng(7);
        std::normal_distribution<float> g(0.0f, 1.0f);
        for (auto &v : x) {
            float f = 0.02f * g(rng);
            uint32_t u;
            std::memcpy(&u, &f, 4);
            v = uint16_t((u + 0x7fff + ((u >> 16) & 1)) >> 16); // bf16, round to nearest even
        }
        for (auto &v : im) v = std::exp(1.5f * g(rng));
        if (qk_buffer_create(ctx, n * 2, &src) || qk_buffer_create(ctx, n * 4, &q) ||
            qk_buffer_create(ctx, n * 4, &out) || qk_buffer_write(src, 0, x.data(), n * 2) ||
            cudaMalloc(&im_dev, kCols * 4) != cudaSuccess ||
            cudaMemcpy(im_dev, im.data(), kCols * 4, cudaMemcpyHostToDevice) != cudaSuccess) {
            qk_context_destroy(ctx);
            ctx = nullptr;
        }
    }
    ~Fixture() {
        cudaFree(im_dev);
        qk_context_destroy(ctx);
    }
};

Fixture &fixture() {
    static Fixture f;
    return f;
}

// Seconds of one call of fn: CUDA events on the default stream around `batch` calls.
template <class Fn> double seconds(Fn fn, int batch = 1) {
    cudaEvent_t a, b;
    cudaEventCreate(&a);
    cudaEventCreate(&b);
    cudaEventRecord(a);
    for (int i = 0; i < batch; i++) fn();
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    return ms * 1e-3 / batch;
}

void report(benchmark::State &state, double in_bytes, double out_bytes) {
    Fixture &f = fixture();
    using C = benchmark::Counter;
    state.counters["in_GB/s"] = C(in_bytes, C::kIsIterationInvariantRate);
    state.counters["out_GB/s"] = C(out_bytes, C::kIsIterationInvariantRate);
    state.counters["weights/s"] = C(double(kRows * kCols), C::kIsIterationInvariantRate);
    state.counters["copy_GB/s"] = f.copy_gbps;
    // fraction of the copy: (in + out) / t over the copy's rate; kIsIterationInvariantRate
    // divides by the time, so pre-divide by the ceiling.
    state.counters["of_copy"] = C((in_bytes + out_bytes) / (f.copy_gbps * 1e9), C::kIsIterationInvariantRate);
}

void BM_copy_d2d(benchmark::State &state) {
    Fixture &f = fixture();
    if (!f.ctx) return state.SkipWithError("no CUDA device");
    const size_t bytes = size_t(kRows * kCols) * 4;
    void *a = nullptr, *b = nullptr;
    cudaMalloc(&a, bytes);
    cudaMalloc(&b, bytes);
    cudaMemset(a, 1, bytes);
    double total = 0;
    for (auto _ : state) {
        double s = seconds([&] {
            cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice);
            cudaDeviceSynchronize();
        });
        state.SetIterationTime(s);
        total += s;
    }
    f.copy_gbps = 2.0 * bytes * double(state.iterations()) / total / 1e9;
    state.counters["GB/s"] = f.copy_gbps;
    cudaFree(a);
    cudaFree(b);
}

// Args: type, imatrix (0/1): with one for the types that read one, without for those that
// do not need one.
void BM_quantize(benchmark::State &state) {
    Fixture &f = fixture();
    if (!f.ctx) return state.SkipWithError("no CUDA device");
    qk_type_info ti;
    qk_type_get_info(int(state.range(0)), &ti);
    const bool with_im = state.range(1) != 0;
    qk_quantize_desc d = qk_quantize_default_desc();
    d.type = ti.type, d.src_type = QK_TYPE_BF16, d.rows = kRows, d.cols = kCols;
    const size_t out_bytes = size_t(kRows) * qk_type_row_bytes(ti.type, kCols);
    d.src = qk_buf(f.src, 0, size_t(kRows * kCols) * 2);
    d.dst = qk_buf(f.q, 0, out_bytes);
    if (with_im) d.imatrix = f.im_dev, d.imatrix_len = kCols;
    for (auto _ : state) {
        qk_status st = QK_OK;
        state.SetIterationTime(seconds([&] { st = qk_cuda_quantize_async(f.ctx, &d, nullptr); }, kBatch));
        if (st != QK_OK) return state.SkipWithError(qk_last_error(f.ctx));
    }
    if (cudaDeviceSynchronize() != cudaSuccess) return state.SkipWithError("kernel failed");
    state.SetLabel(std::string(ti.name) + (with_im ? " imatrix" : "") + " from bf16");
    report(state, double(kRows * kCols) * 2, double(out_bytes));
}

void BM_dequantize(benchmark::State &state) {
    Fixture &f = fixture();
    if (!f.ctx) return state.SkipWithError("no CUDA device");
    qk_type_info ti;
    qk_type_get_info(int(state.range(0)), &ti);
    const size_t q_bytes = size_t(kRows) * qk_type_row_bytes(ti.type, kCols);
    // real blocks to decode: the fixture's values quantized on the device (the CPU reference's
    // bytes, as the GPU tests show, and seconds faster for the I-quants at this size)
    qk_quantize_desc d = qk_quantize_default_desc();
    d.type = ti.type, d.src_type = QK_TYPE_BF16, d.rows = kRows, d.cols = kCols, d.flags = QK_QUANTIZE_ALLOW_NO_IMATRIX;
    d.src = qk_buf(f.src, 0, size_t(kRows * kCols) * 2);
    d.dst = qk_buf(f.q, 0, q_bytes);
    if (qk_quantize(f.ctx, &d) != QK_OK) return state.SkipWithError(qk_last_error(f.ctx));
    qk_dequantize_desc dd = qk_dequantize_default_desc();
    const qk_type out = qk_type(state.range(1));
    const size_t esize = out == QK_TYPE_F32 ? 4 : 2;
    dd.type = ti.type, dd.dst_type = out, dd.rows = kRows, dd.cols = kCols;
    dd.src = qk_buf(f.q, 0, q_bytes);
    dd.dst = qk_buf(f.out, 0, size_t(kRows * kCols) * esize);
    for (auto _ : state) {
        qk_status st = QK_OK;
        state.SetIterationTime(seconds([&] { st = qk_cuda_dequantize_async(f.ctx, &dd, nullptr); }, kBatch));
        if (st != QK_OK) return state.SkipWithError(qk_last_error(f.ctx));
    }
    if (cudaDeviceSynchronize() != cudaSuccess) return state.SkipWithError("kernel failed");
    state.SetLabel(std::string(ti.name) + " to " + qk_type_name(out));
    report(state, double(q_bytes), double(kRows * kCols) * esize);
}

} // namespace

BENCHMARK(BM_copy_d2d)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_quantize)
    ->Apply([](benchmark::internal::Benchmark *b) {
        for (int i = 0; i < qk_type_count(); i++) {
            qk_type_info ti;
            qk_type_get_info(qk_type_at(i), &ti);
            if (!ti.is_quantized) continue;
            if (!ti.needs_imatrix) b->Args({ti.type, 0});
            if (ti.uses_imatrix) b->Args({ti.type, 1});
        }
    })
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_dequantize)
    ->Apply([](benchmark::internal::Benchmark *b) {
        with_types(b, {QK_TYPE_BF16, QK_TYPE_F32});
    })
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_MAIN();
