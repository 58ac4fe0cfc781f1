// The MoE matmul on a CUDA device (issue 5, items 5 and 6): one op is one qk_cuda_moe_*_async
// call on the Qwen3.5-35B-A3B expert shapes (256 experts, 8 used; gate/up W[256][512][2048],
// down W[256][2048][512] with one input per slot), per type and token count, against a
// roofline built from ceilings measured at the start of the same run:
//     roofline = max(bytes of the experts the op's routing touches / device-to-device copy
//                    bandwidth, FLOPs / dense bf16 cuBLAS GEMM rate at 8192^3)
// and fraction = roofline / measured time (1.0 at the roofline).
//
// What the numbers mean:
// - Weights come from device memory, not L2: several copies of the weights, together many
//   times the L2 size, and each op of a sequence takes the next copy and the next of 64
//   routing sets (uniform, fixed seeds).
// - A sequence of N ops (N >= 32) is captured once in a CUDA graph on a non-default stream;
//   one benchmark iteration is one launch of that graph between two CUDA events, so the
//   "Time" column is N ops and the per-op time is the `us` counter. When the graph is short,
//   an untimed launch of the same graph goes first, so that the GPU is busy while the host
//   enqueues the timed one (the host's launch gap would otherwise be timed).
// - Setup (quantizing the weights on the device, routing, graph capture) is outside the
//   timed part and shared: the weights of one (type, shape) serve every benchmark of it.
//
// usage: qkern_bench_moe --benchmark_min_time=0.05 [--benchmark_filter=REGEX]
//        [--benchmark_out=moe.json --benchmark_out_format=json]
// and bench/to_jsonl.py turns the JSON into bench/results records.
#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <bitset>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "bench_types.h"
#include "ceilings.h"
#include "moe_routing.h"
#include "qkern_cuda.h"

namespace {

constexpr int kDevice = 0;
constexpr const char *kDeviceId = "cuda:0";
constexpr const char *kModel = "qwen3.5-35b-a3b";
constexpr int64_t kExperts = 256, kUsed = 8, kHidden = 2048, kFfn = 512;
constexpr int64_t kMaxTokens = 2048;
constexpr int kRoutingSets = 64;
constexpr uint64_t kRoutingSeed = 0x51ed0000; // set s draws with kRoutingSeed + s
// Ops draw their experts at random, so the share of an op's weight bytes still in L2 from
// earlier ops is about L2 size / size of all copies: 1/16 here, where 4x would leave a quarter.
constexpr double kL2Multiple = 16;
constexpr int kMinCopies = 4; // even, so that the fused gate/up op takes copies in pairs
// A graph shorter than this gets an untimed launch ahead of the timed one (see above).
constexpr double kPrefixBelowSeconds = 20e-3;
constexpr int64_t kGemmSquare = 8192;

enum Kind { kMatmul, kFusedGateUp, kWeightedSum };
enum Shape { kGateUp, kDown };

struct ShapeInfo {
    const char *name;
    int64_t m, k;
    int x_per_slot;
};
constexpr ShapeInfo kShapes[] = {{"gate_up", kFfn, kHidden, 0}, {"down", kHidden, kFfn, 1}};

using MoeCall = qk_status (*)(qk_context *, const qk_moe_desc *, qk_cuda_stream);

std::string cuda_error(cudaError_t e, const std::string &what) {
    cudaGetLastError(); // clear a non-sticky error so that the next benchmark starts clean
    return what + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
}

std::string qk_error(qk_context *ctx, qk_status st, const std::string &what) {
    return what + ": " + qk_status_string(st) + ": " + qk_last_error(ctx);
}

// Device memory, freed with its owner.
struct DevMem {
    void *p = nullptr;
    size_t bytes = 0;
    DevMem() = default;
    DevMem(const DevMem &) = delete;
    DevMem &operator=(const DevMem &) = delete;
    ~DevMem() { release(); }
    void release() {
        if (p) cudaFree(p);
        p = nullptr;
        bytes = 0;
    }
    std::string alloc(size_t n, const char *what) {
        release();
        cudaError_t e = cudaMalloc(&p, n);
        if (e != cudaSuccess) {
            p = nullptr;
            return cuda_error(e, "cudaMalloc of " + std::to_string(n >> 20) + " MiB for " + what);
        }
        bytes = n;
        return "";
    }
    void *at(size_t offset) const { return static_cast<char *>(p) + offset; }
};

// splitmix64: the host fills tens of megabytes at setup, where a Mersenne twister would take
// seconds over the whole suite.
struct Rng {
    uint64_t s;
    uint64_t next() {
        uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    // About standard normal: the sum of four uniforms (Irwin-Hall) scaled to unit variance.
    float normal() {
        uint64_t r = next();
        float sum = float(r & 0xffff) + float((r >> 16) & 0xffff) + float((r >> 32) & 0xffff) + float(r >> 48);
        return (sum / 65536.0f - 2.0f) * 1.7320508f;
    }
};

uint16_t to_bf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return uint16_t((u + 0x7fff + ((u >> 16) & 1)) >> 16); // round to nearest even
}

// The weights of one (type, shape): `copies` identical copies of W[kExperts][m][k], each
// starting on a 256-byte boundary.
struct Weights {
    int type = -1;
    int shape = -1;
    int copies = 0;
    size_t copy_bytes = 0, stride = 0;
    DevMem mem;
    qk_mem copy(int c) const { return qk_dev(mem.at(size_t(c) * stride), copy_bytes); }
};

// kRoutingSets routing sets of [tokens][kUsed], on the device, and how many distinct experts
// each touches.
struct Routing {
    DevMem ids, router;
    std::vector<int> distinct;
};

struct Ceilings {
    double copy_bw = 0; // bytes read + written per second
    std::string copy_error;
    double gemm_rate = 0; // FLOP/s, bf16 at kGemmSquare^3
    std::string gemm_error;
    std::map<std::pair<int, int64_t>, double> gemm_shape; // (shape, tokens) -> FLOP/s
};

Ceilings g_ceil;

// What every benchmark shares, made by the first one that runs.
struct Env {
    std::string error; // why no benchmark can run; "" when ready
    qk_context *ctx = nullptr;
    cudaStream_t stream = nullptr;
    cudaEvent_t start = nullptr, stop = nullptr;
    size_t l2_bytes = 0;
    DevMem source;  // bf16 [kExperts * kFfn * kHidden]: the values every quantization reads
    DevMem imatrix; // f32 [kHidden], positive: for the types that need one
    DevMem x, y, workspace;
    Weights weights; // one (type, shape) at a time, to bound the memory held
    std::map<int64_t, std::unique_ptr<Routing>> routing;

    Env() { error = init(); }
    ~Env() {
        weights.mem.release();
        routing.clear();
        if (start) cudaEventDestroy(start);
        if (stop) cudaEventDestroy(stop);
        if (stream) cudaStreamDestroy(stream);
        qk_context_destroy(ctx);
    }

    std::string init() {
        qk_context_params p = qk_context_default_params();
        p.device = kDeviceId;
        if (qk_status st = qk_context_create(&p, &ctx); st != QK_OK) {
            ctx = nullptr;
            return std::string("no qkern context on ") + kDeviceId + ": " + qk_status_string(st) + ": " +
                   qk_last_error(nullptr);
        }
        cudaError_t e;
        int l2 = 0;
        if ((e = cudaSetDevice(kDevice)) != cudaSuccess) return cuda_error(e, "cudaSetDevice");
        if ((e = cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, kDevice)) != cudaSuccess)
            return cuda_error(e, "cudaDeviceGetAttribute(L2 size)");
        l2_bytes = size_t(l2);
        if ((e = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking)) != cudaSuccess)
            return cuda_error(e, "cudaStreamCreate");
        if ((e = cudaEventCreate(&start)) != cudaSuccess || (e = cudaEventCreate(&stop)) != cudaSuccess)
            return cuda_error(e, "cudaEventCreate");

        // The kernels' work does not depend on which values the blocks hold, so one chunk of
        // random values repeats through the source: the host fills 64 MiB, not 512.
        const size_t n = size_t(kExperts * kFfn * kHidden), chunk = size_t(1) << 25;
        std::string why = source.alloc(n * 2, "the weights' source values");
        if (!why.empty()) return why;
        Rng rng{42};
        std::vector<uint16_t> values(chunk);
        for (auto &v : values) v = to_bf16(0.02f * rng.normal());
        for (size_t off = 0; off < n; off += chunk)
            if ((e = cudaMemcpy(source.at(off * 2), values.data(), std::min(chunk, n - off) * 2,
                                cudaMemcpyHostToDevice)) != cudaSuccess)
                return cuda_error(e, "uploading the source values");

        std::vector<float> im(kHidden);
        for (auto &v : im) v = std::exp(1.5f * rng.normal());
        if (!(why = imatrix.alloc(im.size() * 4, "the imatrix")).empty()) return why;
        if ((e = cudaMemcpy(imatrix.p, im.data(), im.size() * 4, cudaMemcpyHostToDevice)) != cudaSuccess)
            return cuda_error(e, "uploading the imatrix");

        // activations for the largest op (the down shape: one input per slot), outputs for the
        // largest output ([tokens][kUsed][kHidden])
        std::vector<float> xs(size_t(kMaxTokens * kUsed * kFfn));
        for (auto &v : xs) v = rng.normal();
        if (!(why = x.alloc(xs.size() * 4, "the activations")).empty()) return why;
        if ((e = cudaMemcpy(x.p, xs.data(), xs.size() * 4, cudaMemcpyHostToDevice)) != cudaSuccess)
            return cuda_error(e, "uploading the activations");
        if (!(why = y.alloc(size_t(kMaxTokens * kUsed * kHidden) * 4, "the outputs")).empty()) return why;
        return "";
    }

    std::string get_routing(int64_t tokens, const Routing **out) {
        auto &slot = routing[tokens];
        if (!slot) {
            auto r = std::make_unique<Routing>();
            const size_t per_set = size_t(tokens * kUsed);
            std::vector<int32_t> ids(per_set * kRoutingSets);
            std::vector<float> router(per_set * kRoutingSets);
            for (int s = 0; s < kRoutingSets; s++) {
                qkb_route(QKB_ROUTING_UNIFORM, kRoutingSeed + uint64_t(s), tokens, kUsed, kExperts,
                          ids.data() + s * per_set, router.data() + s * per_set);
                std::bitset<kExperts> seen;
                for (size_t i = 0; i < per_set; i++) seen.set(size_t(ids[s * per_set + i]) % kExperts);
                r->distinct.push_back(int(seen.count()));
            }
            std::string why = r->ids.alloc(ids.size() * 4, "routing ids");
            if (why.empty()) why = r->router.alloc(router.size() * 4, "router weights");
            if (!why.empty()) return why;
            cudaError_t e = cudaMemcpy(r->ids.p, ids.data(), ids.size() * 4, cudaMemcpyHostToDevice);
            if (e == cudaSuccess) e = cudaMemcpy(r->router.p, router.data(), router.size() * 4, cudaMemcpyHostToDevice);
            if (e != cudaSuccess) return cuda_error(e, "uploading the routing");
            slot = std::move(r);
        }
        *out = slot.get();
        return "";
    }

    // The weights of (type, shape), quantized on the device once and copied; the previous
    // (type, shape)'s are freed first.
    std::string get_weights(const qk_type_info &ti, int shape) {
        if (weights.type == int(ti.type) && weights.shape == shape) return "";
        weights.mem.release();
        weights.type = weights.shape = -1;
        const ShapeInfo &sh = kShapes[shape];
        const size_t bytes = size_t(kExperts * sh.m) * qk_type_row_bytes(ti.type, sh.k);
        if (!bytes) return std::string("k = ") + std::to_string(sh.k) + " is not a multiple of the block size";
        int copies = std::max(kMinCopies, int(std::ceil(kL2Multiple * double(l2_bytes) / double(bytes))));
        copies += copies & 1;
        const size_t stride = (bytes + 255) & ~size_t(255);
        std::string why = weights.mem.alloc(stride * size_t(copies), "the weight copies");
        if (!why.empty()) return why;
        weights.copies = copies, weights.copy_bytes = bytes, weights.stride = stride;

        qk_quantize_desc d = qk_quantize_default_desc();
        d.type = ti.type, d.src_type = QK_TYPE_BF16, d.rows = kExperts * sh.m, d.cols = sh.k;
        d.src = qk_dev(source.p, size_t(d.rows * d.cols) * 2);
        d.dst = weights.copy(0);
        // real models of these types always have an imatrix; the others quantize faster without
        if (ti.needs_imatrix) d.imatrix = static_cast<const float *>(imatrix.p), d.imatrix_len = sh.k;
        d.flags = QK_QUANTIZE_ALLOW_NO_IMATRIX;
        if (qk_status st = qk_cuda_quantize_async(ctx, &d, stream); st != QK_OK)
            return qk_error(ctx, st, std::string("quantizing the weights to ") + ti.name);
        cudaError_t e = cudaSuccess;
        for (int c = 1; c < copies && e == cudaSuccess; c++)
            e = cudaMemcpyAsync(weights.mem.at(size_t(c) * stride), weights.mem.p, bytes, cudaMemcpyDeviceToDevice,
                                stream);
        if (e == cudaSuccess) e = cudaStreamSynchronize(stream);
        if (e != cudaSuccess) return cuda_error(e, std::string("quantizing and copying the ") + ti.name + " weights");
        weights.type = ti.type, weights.shape = shape;
        return "";
    }

    std::string get_workspace(size_t bytes) {
        if (bytes <= workspace.bytes) return "";
        return workspace.alloc(bytes, "the workspace");
    }
};

std::unique_ptr<Env> g_env;

Env &env() {
    if (!g_env) g_env = std::make_unique<Env>();
    return *g_env;
}

struct Graph {
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    ~Graph() {
        if (exec) cudaGraphExecDestroy(exec);
        if (graph) cudaGraphDestroy(graph);
    }
};

// One benchmark's ops: op j takes weight copy j (a pair of copies for the fused gate/up) and
// routing set j, both cycling.
struct Ops {
    Kind kind;
    MoeCall call;
    qk_moe_desc base;
    const Weights *w;
    const Routing *r;

    qk_moe_desc at(int j) const {
        qk_moe_desc d = base;
        const size_t set_bytes = size_t(d.n_tokens * d.n_used) * 4, set = size_t(j % kRoutingSets);
        d.ids = qk_dev(r->ids.at(set * set_bytes), set_bytes);
        if (kind == kWeightedSum) d.router = qk_dev(r->router.at(set * set_bytes), set_bytes);
        if (kind == kFusedGateUp) {
            const int pair = j % (w->copies / 2);
            d.w = w->copy(2 * pair), d.w_up = w->copy(2 * pair + 1);
        } else {
            d.w = w->copy(j % w->copies);
        }
        return d;
    }
};

std::string capture(Env &e, const Ops &ops, int n_ops, Graph *g) {
    cudaError_t ce = cudaStreamBeginCapture(e.stream, cudaStreamCaptureModeGlobal);
    if (ce != cudaSuccess) return cuda_error(ce, "cudaStreamBeginCapture");
    std::string why;
    for (int j = 0; j < n_ops && why.empty(); j++) {
        qk_moe_desc d = ops.at(j);
        if (qk_status st = ops.call(e.ctx, &d, e.stream); st != QK_OK) why = qk_error(e.ctx, st, "the op in capture");
    }
    ce = cudaStreamEndCapture(e.stream, &g->graph);
    if (!why.empty()) {
        cudaGetLastError();
        return why;
    }
    if (ce != cudaSuccess)
        return cuda_error(ce, "cudaStreamEndCapture (a call that synchronizes or allocates breaks the capture)");
    if ((ce = cudaGraphInstantiateWithFlags(&g->exec, g->graph, 0)) != cudaSuccess)
        return cuda_error(ce, "cudaGraphInstantiate");
    if ((ce = cudaGraphUpload(g->exec, e.stream)) != cudaSuccess) return cuda_error(ce, "cudaGraphUpload");
    return "";
}

// Seconds between the events around whatever was enqueued between them.
std::string elapsed(Env &e, double *seconds) {
    cudaError_t ce = cudaEventSynchronize(e.stop);
    float ms = 0;
    if (ce == cudaSuccess) ce = cudaEventElapsedTime(&ms, e.start, e.stop);
    if (ce != cudaSuccess) return cuda_error(ce, "the ops on the device");
    *seconds = double(ms) * 1e-3;
    return "";
}

// Args: type id, tokens.
void BM_moe(benchmark::State &state, Kind kind, Shape shape) {
    Env &e = env();
    if (!e.error.empty()) return state.SkipWithError(e.error.c_str());
    qk_type_info ti;
    if (qk_type_get_info(int(state.range(0)), &ti) != QK_OK) return state.SkipWithError("unknown type id");
    const int64_t tokens = state.range(1);
    const ShapeInfo &sh = kShapes[shape];
    const bool fused_gate_up = kind == kFusedGateUp;

    Ops ops;
    ops.kind = kind;
    ops.call = kind == kMatmul        ? qk_cuda_moe_matmul_async
               : kind == kFusedGateUp ? qk_cuda_moe_gate_up_async
                                      : qk_cuda_moe_weighted_sum_async;
    qk_moe_desc &d = ops.base;
    d = qk_moe_default_desc();
    d.type = ti.type, d.x_type = QK_TYPE_F32;
    d.n_expert = kExperts, d.m = sh.m, d.k = sh.k, d.n_tokens = tokens, d.n_used = kUsed;
    d.x_per_slot = sh.x_per_slot;
    d.x = qk_dev(e.x.p, size_t(tokens * (sh.x_per_slot ? kUsed : 1) * sh.k) * 4);
    d.y = qk_dev(e.y.p, size_t(tokens * (kind == kWeightedSum ? 1 : kUsed) * sh.m) * 4);

    // before anything costly: a type without a kernel on this device is skipped with the reason
    size_t ws = 0;
    if (qk_status st = qk_moe_workspace_size(e.ctx, &d, &ws); st != QK_OK)
        return state.SkipWithError(qk_error(e.ctx, st, "qk_moe_workspace_size").c_str());
    std::string why = e.get_workspace(ws);
    if (why.empty()) why = e.get_routing(tokens, &ops.r);
    if (why.empty()) why = e.get_weights(ti, shape);
    if (!why.empty()) return state.SkipWithError(why.c_str());
    if (ws) d.workspace = qk_dev(e.workspace.p, ws);
    ops.w = &e.weights;

    // eager calls first: lazy module loading and first-call setup stay out of the capture, and
    // the second call's time sizes the graph's timing
    double op_seconds = 0;
    for (int rep = 0; rep < 2; rep++) {
        qk_moe_desc d0 = ops.at(0);
        cudaEventRecord(e.start, e.stream);
        if (qk_status st = ops.call(e.ctx, &d0, e.stream); st != QK_OK)
            return state.SkipWithError(qk_error(e.ctx, st, "the op").c_str());
        cudaEventRecord(e.stop, e.stream);
        if (!(why = elapsed(e, &op_seconds)).empty()) return state.SkipWithError(why.c_str());
    }

    const int n_ops = tokens <= 32 ? 64 : 32;
    Graph g;
    if (!(why = capture(e, ops, n_ops, &g)).empty()) return state.SkipWithError(why.c_str());
    const bool prefix = op_seconds * n_ops < kPrefixBelowSeconds;

    double total = 0;
    for (auto _ : state) {
        cudaError_t ce = prefix ? cudaGraphLaunch(g.exec, e.stream) : cudaSuccess;
        if (ce == cudaSuccess) ce = cudaEventRecord(e.start, e.stream);
        if (ce == cudaSuccess) ce = cudaGraphLaunch(g.exec, e.stream);
        if (ce == cudaSuccess) ce = cudaEventRecord(e.stop, e.stream);
        double s = 0;
        why = ce != cudaSuccess ? cuda_error(ce, "cudaGraphLaunch") : elapsed(e, &s);
        if (!why.empty()) {
            state.SkipWithError(why.c_str());
            break;
        }
        state.SetIterationTime(s);
        total += s;
    }
    if (state.error_occurred() || state.iterations() == 0) return;

    // the roofline: bytes of the distinct experts of the routing sets the graph uses
    double distinct = 0;
    for (int j = 0; j < n_ops; j++) distinct += ops.r->distinct[size_t(j % kRoutingSets)];
    distinct /= n_ops;
    const double expert_bytes = double(sh.m) * double(qk_type_row_bytes(ti.type, sh.k));
    const double bytes = distinct * expert_bytes * (fused_gate_up ? 2 : 1);
    const double flops = 2.0 * double(tokens * kUsed) * double(sh.m * sh.k) * (fused_gate_up ? 2 : 1);
    const double bw_s = g_ceil.copy_bw > 0 ? bytes / g_ceil.copy_bw : 0;
    const double flop_s = g_ceil.gemm_rate > 0 ? flops / g_ceil.gemm_rate : 0;
    const double roof = std::max(bw_s, flop_s);
    const double per_op = total / (double(state.iterations()) * n_ops);
    auto shape_rate = g_ceil.gemm_shape.find({int(shape), tokens});

    state.counters["us"] = per_op * 1e6;
    state.counters["roofline_us"] = roof * 1e6;
    state.counters["fraction"] = roof / per_op;
    state.counters["bytes_per_s"] = bytes / per_op;
    state.counters["flops_per_s"] = flops / per_op;
    state.counters["touched_bytes"] = bytes;
    state.counters["copy_bw"] = g_ceil.copy_bw;
    state.counters["gemm_rate"] = g_ceil.gemm_rate;
    state.counters["gemm_shape_rate"] = shape_rate == g_ceil.gemm_shape.end() ? 0.0 : shape_rate->second;
    char label[160];
    std::snprintf(label, sizeof label, "%s %s %lldx%lld copies=%d ops=%d%s", ti.name, sh.name, (long long)sh.m,
                  (long long)sh.k, e.weights.copies, n_ops, prefix ? " prefix" : "");
    state.SetLabel(label);
}

void moe_args(benchmark::internal::Benchmark *b) { with_types(b, {1, 8, 32, 128, 512, 2048}); }

void fused_args(benchmark::internal::Benchmark *b) {
    for (int t : {QK_TYPE_Q4_K, QK_TYPE_IQ4_XS, QK_TYPE_Q8_0})
        for (int64_t tokens : {1, 512}) b->Args({t, tokens});
}

std::string rate(double v, const char *unit) {
    char s[32];
    std::snprintf(s, sizeof s, "%.1f ", v);
    return s + std::string(unit);
}

// The ceilings, once, before any benchmark, into the run's context (and stderr, as they come).
void measure_ceilings() {
    char err[512] = "", name[256] = "";
    std::fprintf(stderr, "measuring the ceilings...\n");
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, kDevice) == cudaSuccess) {
        benchmark::AddCustomContext("device", prop.name);
        benchmark::AddCustomContext("l2_bytes", std::to_string(prop.l2CacheSize));
    } else {
        cudaGetLastError();
        qkb_device_name(kDevice, name, sizeof name);
        benchmark::AddCustomContext("device", name);
    }
    benchmark::AddCustomContext("qkern", qk_version_string());

    if (qkb_copy_bandwidth(kDevice, 0, &g_ceil.copy_bw, err, sizeof err) == 0) {
        benchmark::AddCustomContext("copy_bandwidth", rate(g_ceil.copy_bw / 1e9, "GB/s (device-to-device copy of "
                                                                                 "1 GiB, bytes read + written)"));
    } else {
        g_ceil.copy_bw = 0, g_ceil.copy_error = err;
        benchmark::AddCustomContext("copy_bandwidth", "unavailable: " + g_ceil.copy_error);
    }
    std::fprintf(stderr, "copy bandwidth: %s\n",
                 g_ceil.copy_error.empty() ? rate(g_ceil.copy_bw / 1e9, "GB/s").c_str() : g_ceil.copy_error.c_str());

    benchmark::AddCustomContext("cublas", qkb_cublas_info());
    const std::string square = "gemm_bf16_" + std::to_string(kGemmSquare) + "^3";
    if (qkb_gemm_rate(kDevice, kGemmSquare, kGemmSquare, kGemmSquare, 1, &g_ceil.gemm_rate, err, sizeof err) == 0) {
        benchmark::AddCustomContext(square, rate(g_ceil.gemm_rate / 1e12, "TFLOP/s (cuBLAS, f32 accumulation)"));
        // the same FLOPs as one op, as one dense GEMM: m x (tokens * used) x k; for comparison
        for (int s : {kGateUp, kDown})
            for (int64_t tokens : {8, 32, 128, 512, 2048}) {
                const ShapeInfo &sh = kShapes[s];
                double r = 0;
                char key[96];
                std::snprintf(key, sizeof key, "gemm_bf16_%s_tokens:%lld (%lldx%lldx%lld)", sh.name, (long long)tokens,
                              (long long)sh.m, (long long)(tokens * kUsed), (long long)sh.k);
                if (qkb_gemm_rate(kDevice, sh.m, tokens * kUsed, sh.k, 1, &r, err, sizeof err) == 0) {
                    g_ceil.gemm_shape[{s, tokens}] = r;
                    benchmark::AddCustomContext(key, rate(r / 1e12, "TFLOP/s"));
                } else {
                    benchmark::AddCustomContext(key, std::string("unavailable: ") + err);
                }
            }
    } else {
        g_ceil.gemm_rate = 0, g_ceil.gemm_error = err;
        benchmark::AddCustomContext(square, "unavailable: " + g_ceil.gemm_error);
    }
    std::fprintf(stderr, "bf16 GEMM %s: %s\n", square.c_str(),
                 g_ceil.gemm_error.empty() ? rate(g_ceil.gemm_rate / 1e12, "TFLOP/s").c_str()
                                           : g_ceil.gemm_error.c_str());

    std::string roof;
    if (g_ceil.copy_bw > 0 && g_ceil.gemm_rate > 0)
        roof = "max(bytes of the experts touched / copy_bandwidth, FLOPs / " + square + ")";
    else if (g_ceil.copy_bw > 0)
        roof = "bytes of the experts touched / copy_bandwidth only (no GEMM ceiling: " + g_ceil.gemm_error + ")";
    else if (g_ceil.gemm_rate > 0)
        roof = "FLOPs / " + square + " only (no copy ceiling: " + g_ceil.copy_error + ")";
    else
        roof = "none (no ceiling could be measured): roofline_us and fraction are 0";
    benchmark::AddCustomContext("roofline", roof);
    benchmark::AddCustomContext("timing", "one iteration = one CUDA graph of `ops` ops (label); `us` is per op; "
                                          "weights spread over copies totalling >= 16x L2; uniform routing, 64 "
                                          "sets; activations f32");
}

} // namespace

BENCHMARK_CAPTURE(BM_moe, matmul_gate_up, kMatmul, kGateUp)
    ->Apply(moe_args)
    ->ArgNames({"type", "tokens"})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_moe, matmul_down, kMatmul, kDown)
    ->Apply(moe_args)
    ->ArgNames({"type", "tokens"})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_moe, gate_up_fused, kFusedGateUp, kGateUp)
    ->Apply(fused_args)
    ->ArgNames({"type", "tokens"})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_moe, weighted_sum, kWeightedSum, kDown)
    ->Apply(fused_args)
    ->ArgNames({"type", "tokens"})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

int main(int argc, char **argv) {
    bool listing = false;
    for (int i = 1; i < argc; i++) listing |= std::strncmp(argv[i], "--benchmark_list_tests", 22) == 0;
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    if (!listing) measure_ceilings();
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    g_env.reset(); // before static destruction, while the CUDA runtime is still up
    return 0;
}
