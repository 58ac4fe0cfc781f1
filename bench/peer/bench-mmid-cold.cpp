// [anchor] MUL_MAT_ID timing with a cold L2: many copies of the expert weights and a fresh random
// routing for every op, so that (unlike test-backend-ops perf, which repeats one node with one routing)
// small-batch ops read their experts from device memory, as in a real model's decode.
//
// usage: bench-mmid-cold [backend=CUDA0] [shape filter substring] [type filter, comma list] [max bs]
// prints one line per (shape, type, bs): median us/op, TFLOP/s, distinct-expert weight bytes/op, GB/s.
// With BENCH_JSONL=FILE set, also appends one JSON object per line in qkern's bench/results fields
// (backend "ggml-cuda" for CUDA0, op moe_tg for 1 token and moe_pp above, value in us per op); BENCH_PEER_COMMIT and
// BENCH_DEVICE are copied into the records.
#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <strings.h>
#include <vector>

struct shape_t {
    const char *name;
    int n_exp, n_used;
    int64_t m, k;
};

static std::string upper_name(ggml_type type) {
    std::string v = ggml_type_name(type);
    for (char &c : v) c = (char)toupper((unsigned char)c);
    return v;
}

static double now_us() {
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int main(int argc, char **argv) {
    const char *backend_name = argc > 1 ? argv[1] : "CUDA0";
    const char *shape_filter = argc > 2 ? argv[2] : "";
    const char *type_filter = argc > 3 ? argv[3] : "";
    const int max_bs = argc > 4 ? atoi(argv[4]) : 1 << 30;

    ggml_backend_load_all();
    ggml_backend_t backend = ggml_backend_init_by_name(backend_name, NULL);
    if (!backend) {
        fprintf(stderr, "no backend %s\n", backend_name);
        return 1;
    }
    printf("backend: %s\n", ggml_backend_name(backend));
    std::string peer_backend = "ggml-"; // ggml-cuda, ggml-vulkan, ggml-cpu: the backend's name without its index
    for (const char *c = ggml_backend_name(backend); *c && !isdigit((unsigned char)*c); c++)
        peer_backend += (char)tolower((unsigned char)*c);

    const shape_t shapes[] = {
        {"qwen3.5-35b-a3b gate_up 512x2048", 256, 8, 512, 2048},
        {"qwen3.5-35b-a3b down 2048x512", 256, 8, 2048, 512},
        {"qwen3-30b-a3b gate_up 768x2048", 128, 8, 768, 2048},
    };
    const ggml_type types[] = {
        GGML_TYPE_Q2_K,   GGML_TYPE_Q3_K,    GGML_TYPE_Q4_K,   GGML_TYPE_Q5_K,  GGML_TYPE_Q6_K,    GGML_TYPE_Q8_0,
        GGML_TYPE_Q4_0,   GGML_TYPE_IQ2_XXS, GGML_TYPE_IQ2_XS, GGML_TYPE_IQ2_S, GGML_TYPE_IQ3_XXS, GGML_TYPE_IQ3_S,
        GGML_TYPE_IQ4_XS, GGML_TYPE_IQ4_NL,  GGML_TYPE_MXFP4,  GGML_TYPE_IQ1_S, GGML_TYPE_F16,     GGML_TYPE_Q4_1,
        GGML_TYPE_Q5_0,   GGML_TYPE_Q5_1,    GGML_TYPE_IQ1_M,  GGML_TYPE_TQ1_0, GGML_TYPE_TQ2_0,
#ifdef PEER_HAS_NVFP4 // defined by build_ggml_cuda.sh when ggml.h has these types
        GGML_TYPE_NVFP4,  GGML_TYPE_Q1_0,    GGML_TYPE_Q2_0,
#endif
    };
    const int batch_sizes[] = {1, 8, 32, 128, 512, 2048};
    FILE *jsonl = getenv("BENCH_JSONL") ? fopen(getenv("BENCH_JSONL"), "a") : NULL;
    const char *peer_commit = getenv("BENCH_PEER_COMMIT") ? getenv("BENCH_PEER_COMMIT") : "";
    const char *device_name = getenv("BENCH_DEVICE") ? getenv("BENCH_DEVICE") : "";
    char date[32];
    {
        time_t now = time(NULL);
        strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    }
    const size_t target_weight_bytes = 1536ull << 20; // all copies together: ~30x the 50 MB L2

    std::mt19937 rng(1234);

    printf("%-24s %-8s %5s %4s %6s %10s %9s %10s %9s %6s\n", "shape", "type", "bs", "cp", "ops", "us/op", "TFLOP/s",
           "wbytes/op", "wGB/s", "spread");
    for (const shape_t &sh : shapes) {
        if (*shape_filter && !strstr(sh.name, shape_filter)) continue;
        for (ggml_type type : types) {
            if (*type_filter && strcasecmp(type_filter, "all") != 0) {
                auto upper = [](std::string v) {
                    for (char &c : v) c = (char)toupper((unsigned char)c);
                    return v;
                };
                const std::string f = upper(std::string(",") + type_filter + ",");
                if (f.find(upper(std::string(",") + ggml_type_name(type) + ",")) == std::string::npos) continue;
            }
            const size_t expert_bytes = ggml_row_size(type, sh.k) * sh.m;
            const size_t tensor_bytes = expert_bytes * sh.n_exp;
            const int n_copies = (int)std::max<size_t>(1, (target_weight_bytes + tensor_bytes - 1) / tensor_bytes);

            // weights: n_copies tensors of [k, m, n_exp]
            ggml_init_params wp = {ggml_tensor_overhead() * (n_copies + 4), NULL, true};
            ggml_context *wctx = ggml_init(wp);
            std::vector<ggml_tensor *> as(n_copies);
            for (int c = 0; c < n_copies; c++) {
                as[c] = ggml_new_tensor_3d(wctx, type, sh.k, sh.m, sh.n_exp);
            }
            ggml_backend_buffer_t wbuf = ggml_backend_alloc_ctx_tensors(wctx, backend);
            if (!wbuf) {
                printf("%-24s %-8s alloc failed\n", sh.name, ggml_type_name(type));
                ggml_free(wctx);
                continue;
            }
            ggml_backend_buffer_set_usage(wbuf, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
            {
                // 2 distinct random expert matrices, tiled over all experts of copy 0, then copied on the device
                const int n_distinct = 2;
                std::vector<uint8_t> host(tensor_bytes);
                std::vector<float> data(sh.m * sh.k), imatrix(sh.k, 1.0f);
                std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
                for (int d = 0; d < n_distinct; d++) {
                    for (float &v : data) v = dist(rng);
                    ggml_quantize_chunk(type, data.data(), host.data() + d * expert_bytes, 0, sh.m, sh.k,
                                        imatrix.data());
                }
                for (int e = n_distinct; e < sh.n_exp; e++) {
                    memcpy(host.data() + e * expert_bytes, host.data() + (e % n_distinct) * expert_bytes, expert_bytes);
                }
                ggml_backend_tensor_set(as[0], host.data(), 0, tensor_bytes);
                for (int c = 1; c < n_copies; c++) {
                    ggml_backend_tensor_copy(as[0], as[c]);
                }
            }

            for (int bs : batch_sizes) {
                if (bs > max_bs) continue;
                const double flops_op = 2.0 * sh.m * sh.k * bs * sh.n_used;
                // enough ops per graph that one graph takes >= ~1-2 ms
                int n_ops = bs <= 8 ? 256 : bs <= 32 ? 128 : bs <= 128 ? 32 : 16;
                if (type == GGML_TYPE_F16 && bs <= 8) n_ops = 64; // F16 small batch may take the slow per-expert path

                const size_t graph_size = 2 * n_ops + n_copies + 16; // nodes + leafs
                ggml_init_params p = {ggml_tensor_overhead() * (3 * n_ops + 16) +
                                          ggml_graph_overhead_custom(graph_size, false),
                                      NULL, true};
                ggml_context *ctx = ggml_init(p);
                // gate/up reads one activation row per token (broadcast over its experts), down one per (token, slot)
                const int b_rows = strstr(sh.name, "gate_up") ? 1 : sh.n_used;
                ggml_tensor *b = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, sh.k, b_rows, bs);
                std::vector<ggml_tensor *> ids(n_ops), outs(n_ops);
                ggml_cgraph *gf = ggml_new_graph_custom(ctx, graph_size, false);
                for (int i = 0; i < n_ops; i++) {
                    ids[i] = ggml_new_tensor_2d(ctx, GGML_TYPE_I32, sh.n_used, bs);
                    outs[i] = ggml_mul_mat_id(ctx, as[i % n_copies], b, ids[i]);
                    ggml_build_forward_expand(gf, outs[i]);
                }
                if (!ggml_backend_supports_op(backend, outs[0])) {
                    printf("%-24s %-8s %5d not supported by this backend\n", sh.name, ggml_type_name(type), bs);
                    ggml_free(ctx);
                    continue;
                }
                ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors(ctx, backend);
                if (!buf) {
                    printf("%-24s %-8s %5d alloc failed\n", sh.name, ggml_type_name(type), bs);
                    ggml_free(ctx);
                    continue;
                }

                // activations
                {
                    std::vector<float> x(sh.k * b_rows * bs);
                    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
                    for (float &v : x) v = dist(rng);
                    ggml_backend_tensor_set(b, x.data(), 0, x.size() * sizeof(float));
                }
                // routing: each token picks n_used distinct random experts, fresh for every op
                double distinct_sum = 0;
                {
                    std::vector<int32_t> perm(sh.n_exp), idv(sh.n_used * bs);
                    std::iota(perm.begin(), perm.end(), 0);
                    for (int i = 0; i < n_ops; i++) {
                        std::set<int> used;
                        for (int t = 0; t < bs; t++) {
                            std::shuffle(perm.begin(), perm.end(), rng);
                            for (int j = 0; j < sh.n_used; j++) {
                                idv[t * sh.n_used + j] = perm[j];
                                used.insert(perm[j]);
                            }
                        }
                        distinct_sum += used.size();
                        ggml_backend_tensor_set(ids[i], idv.data(), 0, idv.size() * sizeof(int32_t));
                    }
                }
                const double wbytes_op = distinct_sum / n_ops * expert_bytes;

                // warm up (also CUDA graph warmup + capture), then time whole-graph computes
                bool ok = true;
                for (int w = 0; w < 3 && ok; w++) ok = ggml_backend_graph_compute(backend, gf) == GGML_STATUS_SUCCESS;
                if (!ok) {
                    printf("%-24s %-8s %5d compute failed\n", sh.name, ggml_type_name(type), bs);
                }
                std::vector<double> t;
                const double t_start = now_us();
                while (ok && (t.size() < 5 || (t.size() < 200 && now_us() - t_start < 300e3))) {
                    const double t0 = now_us();
                    ggml_backend_graph_compute(backend, gf);
                    t.push_back(now_us() - t0);
                }
                if (ok) {
                    std::sort(t.begin(), t.end());
                    const double med = t[t.size() / 2] / n_ops;
                    const double spread = (t[t.size() * 9 / 10] - t[t.size() / 10]) / t[t.size() / 2];
                    printf("%-24s %-8s %5d %4d %6d %10.2f %9.2f %10.0f %9.1f %6.3f\n", sh.name, ggml_type_name(type),
                           bs, n_copies, n_ops, med, flops_op / med * 1e-6, wbytes_op, wbytes_op / med * 1e-3, spread);
                    fflush(stdout);
                    if (jsonl) {
                        fprintf(jsonl,
                                "{\"device\": \"%s\", \"date\": \"%s\", \"backend\": \"%s\", \"peer_commit\": \"%s\", "
                                "\"op\": \"%s\", \"type\": \"%s\", \"shape\": \"%s\", \"tokens\": %d, \"value\": %.3f, "
                                "\"unit\": \"us\", \"weight_bytes\": %.0f, \"flops_per_s\": %.4g, \"spread\": %.3f}\n",
                                device_name, date, peer_backend.c_str(), peer_commit, bs == 1 ? "moe_tg" : "moe_pp",
                                upper_name(type).c_str(), sh.name, bs, med, wbytes_op, flops_op / med * 1e6, spread);
                        fflush(jsonl);
                    }
                }
                ggml_backend_buffer_free(buf);
                ggml_free(ctx);
            }
            ggml_backend_buffer_free(wbuf);
            ggml_free(wctx);
        }
    }
    if (jsonl) fclose(jsonl);
    ggml_backend_free(backend);
    return 0;
}
