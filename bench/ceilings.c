/* The ceilings of ceilings.h, measured on the device with the CUDA runtime and cuBLAS (loaded
 * at run time). */
#define _GNU_SOURCE /* dlinfo, to report the path cuBLAS was loaded from */
#include "ceilings.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

#ifndef QK_HAVE_CUDA

#define NO_CUDA "no CUDA in this build"

int qkb_copy_bandwidth(int device, size_t bytes, double *bytes_per_s, char *err, size_t errlen) {
    (void)device, (void)bytes, (void)bytes_per_s;
    return fail(err, errlen, NO_CUDA);
}

int qkb_gemm_rate(int device, int64_t m, int64_t n, int64_t k, int bf16, double *flops_per_s, char *err,
                  size_t errlen) {
    (void)device, (void)m, (void)n, (void)k, (void)bf16, (void)flops_per_s;
    return fail(err, errlen, NO_CUDA);
}

int qkb_dequant_grouped_gemm_us(qk_context *ctx, int device, qk_type type, qk_mem w, int64_t n_expert, int64_t m,
                                int64_t k, int64_t n_tokens, int64_t n_used, const int32_t *ids, double *dequant_us,
                                double *gemm_us, char *err, size_t errlen) {
    (void)ctx, (void)device, (void)type, (void)w, (void)n_expert, (void)m, (void)k, (void)n_tokens, (void)n_used;
    (void)ids, (void)dequant_us, (void)gemm_us;
    return fail(err, errlen, NO_CUDA);
}

void qkb_device_name(int device, char *name, size_t n) {
    (void)device;
    if (n) name[0] = 0;
}

const char *qkb_cublas_info(void) { return NO_CUDA; }

int qkb_graph_time(int device, qkb_enqueue_fn enqueue, void *arg, int reps, double *us, char *err, size_t errlen) {
    (void)device, (void)enqueue, (void)arg, (void)reps, (void)us;
    return fail(err, errlen, NO_CUDA);
}

#else

#include <cublas_api.h> /* types and enums only: every function comes through dlsym */
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <glob.h>
#include <link.h>
#include <pthread.h>

#include "qkern_cuda.h"

#define WARMUP 2
#define REPS   10

/* ---- cuBLAS, loaded at run time ------------------------------------------------------------- */

typedef cublasStatus_t (*create_fn)(cublasHandle_t *);
typedef cublasStatus_t (*destroy_fn)(cublasHandle_t);
typedef cublasStatus_t (*set_stream_fn)(cublasHandle_t, cudaStream_t);
typedef cublasStatus_t (*gemm_ex_fn)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void *,
                                     const void *, cudaDataType, int, const void *, cudaDataType, int, const void *,
                                     void *, cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);
typedef cublasStatus_t (*gemm_grouped_fn)(cublasHandle_t, const cublasOperation_t[], const cublasOperation_t[],
                                          const int[], const int[], const int[], const void *, const void *const[],
                                          cudaDataType_t, const int[], const void *const[], cudaDataType_t, const int[],
                                          const void *, void *const[], cudaDataType_t, const int[], int, const int[],
                                          cublasComputeType_t);

static struct {
    void *lib;
    create_fn create;
    destroy_fn destroy;
    set_stream_fn set_stream;
    gemm_ex_fn gemm_ex;
    gemm_grouped_fn gemm_grouped; /* NULL before cuBLAS 12.5, which the grouped ceiling then lacks */
    char info[1024];
} cublas;

static pthread_once_t cublas_once = PTHREAD_ONCE_INIT;

/* A full path's directory may hold the libcublasLt it depends on, which the loader does not
 * find there unless the library carries a RUNPATH: load that one first, globally. */
static void *open_cublas(const char *path) {
    const char *slash = strrchr(path, '/');
    if (slash) {
        char pattern[768];
        glob_t g;
        snprintf(pattern, sizeof pattern, "%.*s/libcublasLt.so*", (int)(slash - path), path);
        if (glob(pattern, 0, NULL, &g) == 0) {
            for (size_t i = 0; i < g.gl_pathc; i++)
                if (dlopen(g.gl_pathv[i], RTLD_NOW | RTLD_GLOBAL)) break;
            globfree(&g);
        }
    }
    return dlopen(path, RTLD_NOW | RTLD_LOCAL);
}

static void load_cublas(void) {
    /* the loader's search path first, then where a CUDA toolkit or the pip wheel nvidia-cublas
     * puts it, newest major version first */
    static const char *const names[] = {"libcublas.so.13", "libcublas.so.12", "libcublas.so"};
    static const char *const patterns[] = {
        "/usr/local/cuda*/lib64/libcublas.so.1[0-9]",
        "/usr/local/cuda*/targets/*/lib/libcublas.so.1[0-9]",
        "/usr/lib/python3*/site-packages/nvidia/*/lib/libcublas.so.1[0-9]",
        "/usr/lib/python3/dist-packages/nvidia/*/lib/libcublas.so.1[0-9]",
        "/usr/local/lib/python3*/site-packages/nvidia/*/lib/libcublas.so.1[0-9]",
        "/usr/local/lib/python3*/dist-packages/nvidia/*/lib/libcublas.so.1[0-9]",
        "/opt/conda/lib/python3*/site-packages/nvidia/*/lib/libcublas.so.1[0-9]",
        "/opt/conda/lib/libcublas.so.1[0-9]",
        "/usr/lib/x86_64-linux-gnu/libcublas.so.1[0-9]",
    };
    char tried[768] = "";
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !cublas.lib; i++) cublas.lib = open_cublas(names[i]);
    for (size_t p = 0; p < sizeof patterns / sizeof patterns[0] && !cublas.lib; p++) {
        glob_t g;
        if (glob(patterns[p], 0, NULL, &g) != 0) continue;
        for (size_t i = g.gl_pathc; i-- > 0 && !cublas.lib;) /* glob sorts: the highest version last */
            cublas.lib = open_cublas(g.gl_pathv[i]);
        globfree(&g);
    }
    if (!cublas.lib) {
        for (size_t p = 0; p < sizeof patterns / sizeof patterns[0]; p++)
            snprintf(tried + strlen(tried), sizeof tried - strlen(tried), "%s%s", p ? ", " : "", patterns[p]);
        snprintf(cublas.info, sizeof cublas.info,
                 "cuBLAS not found (libcublas.so.13, .so.12, .so on the loader's path, then %s)", tried);
        return;
    }
    struct link_map *lm = NULL;
    const char *where = dlinfo(cublas.lib, RTLD_DI_LINKMAP, &lm) == 0 && lm && lm->l_name ? lm->l_name : "?";
    cublas.create = (create_fn)dlsym(cublas.lib, "cublasCreate_v2");
    cublas.destroy = (destroy_fn)dlsym(cublas.lib, "cublasDestroy_v2");
    cublas.set_stream = (set_stream_fn)dlsym(cublas.lib, "cublasSetStream_v2");
    cublas.gemm_ex = (gemm_ex_fn)dlsym(cublas.lib, "cublasGemmEx");
    cublas.gemm_grouped = (gemm_grouped_fn)dlsym(cublas.lib, "cublasGemmGroupedBatchedEx");
    if (!cublas.create || !cublas.destroy || !cublas.set_stream || !cublas.gemm_ex) {
        snprintf(cublas.info, sizeof cublas.info, "cuBLAS at %.900s lacks cublasCreate_v2/cublasGemmEx", where);
        dlclose(cublas.lib);
        cublas.lib = NULL;
        return;
    }
    snprintf(cublas.info, sizeof cublas.info, "%.900s%s", where,
             cublas.gemm_grouped ? "" : " (no cublasGemmGroupedBatchedEx: cuBLAS older than 12.5)");
}

const char *qkb_cublas_info(void) {
    pthread_once(&cublas_once, load_cublas);
    return cublas.info;
}

static int need_cublas(char *err, size_t errlen) {
    pthread_once(&cublas_once, load_cublas);
    return cublas.lib ? 0 : fail(err, errlen, "%s", cublas.info);
}

/* ---- helpers ------------------------------------------------------------------------------- */

#define CK(call)                                                                                                       \
    do {                                                                                                               \
        cudaError_t e_ = (call);                                                                                       \
        if (e_ != cudaSuccess) {                                                                                       \
            cudaGetLastError();                                                                                        \
            rc = fail(err, errlen, "%s: %s", #call, cudaGetErrorString(e_));                                           \
            goto done;                                                                                                 \
        }                                                                                                              \
    } while (0)

#define CKB(call)                                                                                                      \
    do {                                                                                                               \
        cublasStatus_t s_ = (call);                                                                                    \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                                             \
            rc = fail(err, errlen, "cuBLAS: %s failed with status %d", #call, (int)s_);                                \
            goto done;                                                                                                 \
        }                                                                                                              \
    } while (0)

static uint64_t next_u64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Random 16-bit floats of magnitude 1/4 to 2 and random sign: nonzero, finite, no denormal,
 * and products of k of them stay far inside fp16's range for the k of model shapes. bf16 has
 * 8 exponent bits (bias 127), fp16 5 (bias 15). */
static int upload_random16(void *dst, size_t count, int bf16, uint64_t seed, char *err, size_t errlen) {
    int rc = 0;
    uint16_t *h = NULL;
    const size_t chunk = (size_t)1 << 22;
    if (!(h = malloc((count < chunk ? count : chunk) * sizeof *h))) return fail(err, errlen, "out of host memory");
    for (size_t at = 0; at < count; at += chunk) {
        size_t n = count - at < chunk ? count - at : chunk;
        for (size_t i = 0; i < n; i++) {
            uint64_t r = next_u64(&seed);
            unsigned sign = (unsigned)(r >> 63), e = (unsigned)(r >> 32) % 4u;
            h[i] = bf16 ? (uint16_t)(sign << 15 | (125u + e) << 7 | (unsigned)(r & 0x7F))
                        : (uint16_t)(sign << 15 | (13u + e) << 10 | (unsigned)(r & 0x3FF));
        }
        CK(cudaMemcpy((uint16_t *)dst + at, h, n * sizeof *h, cudaMemcpyHostToDevice));
    }
done:
    free(h);
    return rc;
}

static int elapsed_us(cudaEvent_t a, cudaEvent_t b, double *us, char *err, size_t errlen) {
    int rc = 0;
    float ms = 0;
    CK(cudaEventSynchronize(b));
    CK(cudaEventElapsedTime(&ms, a, b));
    *us = 1e3 * (double)ms;
done:
    return rc;
}

void qkb_device_name(int device, char *name, size_t n) {
    struct cudaDeviceProp p;
    if (!n) return;
    name[0] = 0;
    if (cudaGetDeviceProperties(&p, device) == cudaSuccess)
        snprintf(name, n, "%s", p.name);
    else
        cudaGetLastError();
}

/* ---- copy bandwidth ----------------------------------------------------------------------- */

int qkb_copy_bandwidth(int device, size_t bytes, double *bytes_per_s, char *err, size_t errlen) {
    int rc = 0;
    void *a = NULL, *b = NULL;
    cudaStream_t st = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    if (!bytes) bytes = (size_t)1 << 30;
    CK(cudaSetDevice(device));
    CK(cudaMalloc(&a, bytes));
    CK(cudaMalloc(&b, bytes));
    CK(cudaMemset(a, 0x5A, bytes)); /* not zeros: nothing on the path can shortcut a constant */
    CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    double best = 0;
    for (int i = 0; i < WARMUP + REPS; i++) {
        double us;
        CK(cudaEventRecord(e0, st));
        CK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, st));
        CK(cudaEventRecord(e1, st));
        if ((rc = elapsed_us(e0, e1, &us, err, errlen)) != 0) goto done;
        if (i >= WARMUP && (best == 0 || us < best)) best = us;
    }
    *bytes_per_s = 2.0 * (double)bytes / (best * 1e-6);
done:
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    if (st) cudaStreamDestroy(st);
    cudaFree(a);
    cudaFree(b);
    return rc;
}

/* ---- dense GEMM rate ---------------------------------------------------------------------- */

int qkb_gemm_rate(int device, int64_t m, int64_t n, int64_t k, int bf16, double *flops_per_s, char *err,
                  size_t errlen) {
    int rc = 0;
    void *a = NULL, *b = NULL, *c = NULL;
    cudaStream_t st = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    cublasHandle_t h = NULL;
    if (need_cublas(err, errlen)) return -1;
    if (m < 1 || n < 1 || k < 1 || m > INT32_MAX || n > INT32_MAX || k > INT32_MAX)
        return fail(err, errlen, "GEMM %lld x %lld x %lld: each must be in [1, 2^31)", (long long)m, (long long)n,
                    (long long)k);
    const cudaDataType dt = bf16 ? CUDA_R_16BF : CUDA_R_16F;
    const float alpha = 1.0f, beta = 0.0f;
    CK(cudaSetDevice(device));
    CK(cudaMalloc(&a, (size_t)(m * k) * 2));
    CK(cudaMalloc(&b, (size_t)(k * n) * 2));
    CK(cudaMalloc(&c, (size_t)(m * n) * 2));
    if ((rc = upload_random16(a, (size_t)(m * k), bf16, 1, err, errlen)) != 0) goto done;
    if ((rc = upload_random16(b, (size_t)(k * n), bf16, 2, err, errlen)) != 0) goto done;
    CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    CKB(cublas.create(&h));
    CKB(cublas.set_stream(h, st));
    double best = 0;
    for (int i = 0; i < WARMUP + REPS; i++) {
        double us;
        CK(cudaEventRecord(e0, st));
        /* column-major C[m][n] = A^T . B with A stored k x m: the layout of weights W[m][k] times
         * activations, as the MoE ops multiply */
        CKB(cublas.gemm_ex(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)m, (int)n, (int)k, &alpha, a, dt, (int)k, b, dt, (int)k,
                           &beta, c, dt, (int)m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        CK(cudaEventRecord(e1, st));
        if ((rc = elapsed_us(e0, e1, &us, err, errlen)) != 0) goto done;
        if (i >= WARMUP && (best == 0 || us < best)) best = us;
    }
    *flops_per_s = 2.0 * (double)m * (double)n * (double)k / (best * 1e-6);
done:
    if (h) cublas.destroy(h);
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    if (st) cudaStreamDestroy(st);
    cudaFree(a);
    cudaFree(b);
    cudaFree(c);
    return rc;
}

/* ---- dequantize + grouped GEMM ------------------------------------------------------------ */

/* bytes of m from byte off on: a buffer range moves its offset, device memory its pointer */
static qk_mem mem_part(qk_mem m, size_t off, size_t bytes) {
    if (m.buffer)
        m.offset += off;
    else
        m.device = (char *)m.device + off;
    m.bytes = bytes;
    return m;
}

int qkb_dequant_grouped_gemm_us(qk_context *ctx, int device, qk_type type, qk_mem w, int64_t n_expert, int64_t m,
                                int64_t k, int64_t n_tokens, int64_t n_used, const int32_t *ids, double *dequant_us,
                                double *gemm_us, char *err, size_t errlen) {
    int rc = 0;
    int64_t *count = NULL, *slot_of = NULL;
    int *gm = NULL, *gn = NULL, *gk = NULL, *lda = NULL, *ldb = NULL, *ldc = NULL, *gsize = NULL;
    cublasOperation_t *ta = NULL, *tb = NULL;
    float *alpha = NULL, *beta = NULL;
    void **ptrs = NULL, **d_ptrs = NULL;
    void *wh = NULL, *xg = NULL, *yg = NULL;
    cudaStream_t st = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    cublasHandle_t h = NULL;
    if (need_cublas(err, errlen)) return -1;
    if (!cublas.gemm_grouped) return fail(err, errlen, "%s", cublas.info);
    const size_t row_bytes = qk_type_row_bytes(type, k);
    if (!ctx || (!w.buffer && !w.device) || !ids || n_expert < 1 || m < 1 || k < 1 || n_tokens < 1 || n_used < 1 ||
        !row_bytes || m > INT32_MAX || k > INT32_MAX || n_tokens * n_used > INT32_MAX)
        return fail(err, errlen, "dequant + grouped GEMM: bad arguments (type %s, %lld experts of %lld x %lld)",
                    qk_type_name(type) ? qk_type_name(type) : "?", (long long)n_expert, (long long)m, (long long)k);

    /* the experts the routing touches, their token counts, and where each one's fp16 copy goes */
    if (!(count = calloc((size_t)n_expert, sizeof *count)) || !(slot_of = malloc((size_t)n_expert * sizeof *slot_of))) {
        rc = fail(err, errlen, "out of host memory");
        goto done;
    }
    for (int64_t i = 0; i < n_tokens * n_used; i++) {
        if (ids[i] < 0 || ids[i] >= n_expert) {
            rc = fail(err, errlen, "dequant + grouped GEMM: ids[%lld] is %d, outside [0, %lld)", (long long)i,
                      (int)ids[i], (long long)n_expert);
            goto done;
        }
        count[ids[i]]++;
    }
    int64_t groups = 0;
    for (int64_t e = 0; e < n_expert; e++) slot_of[e] = count[e] ? groups++ : -1;

    CK(cudaSetDevice(device));
    const size_t slots = (size_t)(n_tokens * n_used);
    CK(cudaMalloc(&wh, (size_t)groups * (size_t)m * (size_t)k * 2));
    CK(cudaMalloc(&xg, slots * (size_t)k * 2));
    CK(cudaMalloc(&yg, slots * (size_t)m * 2));
    /* The activations are drawn already grouped by expert: which token's row lands where does
     * not change the GEMM's time, and the gather a user also needs is left out of the path's
     * time (in its favour). */
    if ((rc = upload_random16(xg, slots * (size_t)k, 0, 3, err, errlen)) != 0) goto done;

    const int g = (int)groups;
    gm = malloc(g * sizeof *gm), gn = malloc(g * sizeof *gn), gk = malloc(g * sizeof *gk);
    lda = malloc(g * sizeof *lda), ldb = malloc(g * sizeof *ldb), ldc = malloc(g * sizeof *ldc);
    gsize = malloc(g * sizeof *gsize), ta = malloc(g * sizeof *ta), tb = malloc(g * sizeof *tb);
    alpha = malloc(g * sizeof *alpha), beta = malloc(g * sizeof *beta), ptrs = malloc(3 * (size_t)g * sizeof *ptrs);
    if (!gm || !gn || !gk || !lda || !ldb || !ldc || !gsize || !ta || !tb || !alpha || !beta || !ptrs) {
        rc = fail(err, errlen, "out of host memory");
        goto done;
    }
    size_t x_at = 0;
    for (int64_t e = 0; e < n_expert; e++) {
        if (slot_of[e] < 0) continue;
        const int i = (int)slot_of[e];
        /* column-major: Y_e (m x n_e) = W_e^T . X_e, W_e stored k x m, X_e k x n_e */
        ta[i] = CUBLAS_OP_T, tb[i] = CUBLAS_OP_N;
        gm[i] = (int)m, gn[i] = (int)count[e], gk[i] = (int)k;
        lda[i] = (int)k, ldb[i] = (int)k, ldc[i] = (int)m;
        gsize[i] = 1, alpha[i] = 1.0f, beta[i] = 0.0f;
        ptrs[i] = (char *)wh + (size_t)i * (size_t)m * (size_t)k * 2;
        ptrs[g + i] = (char *)xg + x_at * (size_t)k * 2;
        ptrs[2 * g + i] = (char *)yg + x_at * (size_t)m * 2;
        x_at += (size_t)count[e];
    }
    CK(cudaMalloc((void **)&d_ptrs, 3 * (size_t)g * sizeof *d_ptrs));
    CK(cudaMemcpy(d_ptrs, ptrs, 3 * (size_t)g * sizeof *ptrs, cudaMemcpyHostToDevice));
    CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    CKB(cublas.create(&h));
    CKB(cublas.set_stream(h, st));

    double best_dq = 0, best_mm = 0;
    for (int rep = 0; rep < WARMUP + REPS; rep++) {
        double us;
        CK(cudaEventRecord(e0, st));
        /* one dequantize per run of consecutive touched experts: what a user's loop would do at
         * best without a gather-dequantize kernel */
        for (int64_t e = 0; e < n_expert;) {
            if (slot_of[e] < 0) {
                e++;
                continue;
            }
            int64_t end = e;
            while (end < n_expert && slot_of[end] >= 0) end++;
            qk_dequantize_desc d = qk_dequantize_default_desc();
            d.type = type, d.dst_type = QK_TYPE_F16, d.rows = (end - e) * m, d.cols = k;
            d.src = mem_part(w, (size_t)e * (size_t)m * row_bytes, (size_t)d.rows * row_bytes);
            d.dst = qk_dev((char *)wh + (size_t)slot_of[e] * (size_t)m * (size_t)k * 2, (size_t)(d.rows * k) * 2);
            if (qk_cuda_dequantize_async(ctx, &d, (qk_cuda_stream)st) != QK_OK) {
                rc = fail(err, errlen, "qk_cuda_dequantize_async: %s", qk_last_error(ctx));
                goto done;
            }
            e = end;
        }
        CK(cudaEventRecord(e1, st));
        if ((rc = elapsed_us(e0, e1, &us, err, errlen)) != 0) goto done;
        if (rep >= WARMUP && (best_dq == 0 || us < best_dq)) best_dq = us;

        CK(cudaEventRecord(e0, st));
        CKB(cublas.gemm_grouped(h, ta, tb, gm, gn, gk, alpha, (const void *const *)d_ptrs, CUDA_R_16F, lda,
                                (const void *const *)(d_ptrs + g), CUDA_R_16F, ldb, beta, d_ptrs + 2 * g, CUDA_R_16F,
                                ldc, g, gsize, CUBLAS_COMPUTE_32F));
        CK(cudaEventRecord(e1, st));
        if ((rc = elapsed_us(e0, e1, &us, err, errlen)) != 0) goto done;
        if (rep >= WARMUP && (best_mm == 0 || us < best_mm)) best_mm = us;
    }
    *dequant_us = best_dq;
    *gemm_us = best_mm;
done:
    if (h) cublas.destroy(h);
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    if (st) cudaStreamDestroy(st);
    cudaFree(d_ptrs);
    cudaFree(wh);
    cudaFree(xg);
    cudaFree(yg);
    free(count), free(slot_of), free(gm), free(gn), free(gk), free(lda), free(ldb), free(ldc), free(gsize);
    free(ta), free(tb), free(alpha), free(beta), free(ptrs);
    return rc;
}

/* ---- a CUDA graph, timed ------------------------------------------------------------------ */

int qkb_graph_time(int device, qkb_enqueue_fn enqueue, void *arg, int reps, double *us, char *err, size_t errlen) {
    int rc = 0;
    cudaStream_t st = NULL;
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    CK(cudaSetDevice(device));
    CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    /* once outside the capture: lazy initialization (kernel loading, attributes) happens here,
     * and an error shows with its own message rather than as an invalidated capture */
    if ((rc = enqueue(arg, st, err, errlen)) != 0) goto done;
    CK(cudaStreamSynchronize(st));
    CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
    rc = enqueue(arg, st, err, errlen);
    cudaError_t end = cudaStreamEndCapture(st, &graph);
    if (rc) goto done;
    CK(end);
    CK(cudaGraphInstantiate(&exec, graph, 0));
    CK(cudaGraphLaunch(exec, st));
    CK(cudaStreamSynchronize(st));
    for (int i = 0; i < reps; i++) {
        CK(cudaEventRecord(e0, st));
        CK(cudaGraphLaunch(exec, st));
        CK(cudaEventRecord(e1, st));
        if ((rc = elapsed_us(e0, e1, &us[i], err, errlen)) != 0) goto done;
    }
done:
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    if (st) cudaStreamDestroy(st);
    return rc;
}

#endif
