// Quantize and dequantize throughput per type on one device (default: the best one; set
// QK_BENCH_DEVICE=cpu, cuda:0, ...). Counters: input or output GB/s (whichever is larger)
// and weights/s. The host-to-host copy of the same f32 tensor is measured alongside as the
// ceiling for the CPU (DESIGN.md: every number beside its ceiling).
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "bench_types.h"
#include "qkern.h"

namespace {

constexpr int64_t kRows = 256, kCols = 4096;

struct Fixture {
    qk_context *ctx = nullptr;
    std::vector<float> x, y, im;
    std::vector<uint8_t> q;
    Fixture() : x(kRows * kCols), y(kRows * kCols), im(kCols), q(kRows * kCols * 4) {
        qk_context_params p = qk_context_default_params();
        p.device = std::getenv("QK_BENCH_DEVICE");
        if (qk_context_create(&p, &ctx) != QK_OK) ctx = nullptr;
        std::mt19937_64 rng(7);
        std::normal_distribution<float> n(0.0f, 0.02f);
        for (auto &v : x) v = n(rng);
        for (auto &v : im) v = std::exp(1.5f * n(rng) / 0.02f);
    }
    ~Fixture() { qk_context_destroy(ctx); }
};

Fixture &fixture() {
    static Fixture f;
    return f;
}

void set_rates(benchmark::State &state, double bytes) {
    state.counters["GB/s"] = benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["weights/s"] =
        benchmark::Counter(double(kRows * kCols), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_copy(benchmark::State &state) {
    Fixture &f = fixture();
    for (auto _ : state) {
        std::memcpy(f.y.data(), f.x.data(), f.x.size() * sizeof(float));
        benchmark::ClobberMemory();
    }
    set_rates(state, 2.0 * f.x.size() * sizeof(float)); // read + write
}

void BM_quantize(benchmark::State &state) {
    Fixture &f = fixture();
    qk_type_info ti;
    qk_type_get_info(int(state.range(0)), &ti);
    if (!f.ctx) return state.SkipWithError("no device");
    qk_quantize_desc d = qk_quantize_default_desc();
    d.type = ti.type, d.rows = kRows, d.cols = kCols;
    d.src = qk_host(f.x.data(), f.x.size() * sizeof(float));
    d.dst = qk_host(f.q.data(), f.q.size());
    if (ti.uses_imatrix) d.imatrix = f.im.data(), d.imatrix_len = kCols;
    for (auto _ : state)
        if (qk_quantize(f.ctx, &d) != QK_OK) return state.SkipWithError(qk_last_error(f.ctx));
    state.SetLabel(std::string(ti.name) + (ti.uses_imatrix ? " imatrix" : ""));
    set_rates(state, double(f.x.size() * sizeof(float)));
}

void BM_dequantize(benchmark::State &state) {
    Fixture &f = fixture();
    qk_type_info ti;
    qk_type_get_info(int(state.range(0)), &ti);
    if (!f.ctx) return state.SkipWithError("no device");
    qk_quantize_desc d = qk_quantize_default_desc();
    d.type = ti.type, d.rows = kRows, d.cols = kCols, d.flags = QK_QUANTIZE_ALLOW_NO_IMATRIX;
    d.src = qk_host(f.x.data(), f.x.size() * sizeof(float));
    d.dst = qk_host(f.q.data(), f.q.size());
    if (qk_quantize(f.ctx, &d) != QK_OK) return state.SkipWithError(qk_last_error(f.ctx));
    qk_dequantize_desc dd = qk_dequantize_default_desc();
    dd.type = ti.type, dd.rows = kRows, dd.cols = kCols;
    dd.src = qk_host(f.q.data(), f.q.size());
    dd.dst = qk_host(f.y.data(), f.y.size() * sizeof(float));
    for (auto _ : state)
        if (qk_dequantize(f.ctx, &dd) != QK_OK) return state.SkipWithError(qk_last_error(f.ctx));
    state.SetLabel(ti.name);
    set_rates(state, double(f.y.size() * sizeof(float)));
}

} // namespace

BENCHMARK(BM_copy)->UseRealTime();
BENCHMARK(BM_quantize)->Apply(quantized_types)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_dequantize)->Apply(quantized_types)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
