/* The C entry points of the CUDA kernels: ggml type id -> the family launchers. This table is
 * the one place that says which kernels exist. */
#include "codec_launch.h"
#include "cuda_kernels.h"
#include "moe_launch.h"
#include "qkern.h"

namespace {

struct codec {
    qk_cuda_quant_launcher quant;
    qk_cuda_dequant_launcher dequant;
    qk_cuda_error_launcher error;
    qk_cuda_moe_launcher moe;
    qk_cuda_moe_init moe_init;
};

/* One case for every row of the format table with a cuda column of Y. */
#define CODEC(NAME, codec, id, elems, bytes, family, source, imatrix, cpu, cuda, ...)                                  \
    QK_IF_##cuda(case id                                                                                               \
                 : return {qk_cuda_quantize_##codec, qk_cuda_dequantize_##codec, qk_cuda_error_##codec,                \
                           qk_cuda_moe_##codec, qk_cuda_moe_init_##codec};)

codec codec_of(int type) {
    switch (type) {
        QK_FORMATS(CODEC)
    default: return {nullptr, nullptr, nullptr, nullptr, nullptr};
    }
}
#undef CODEC

bool plain_type(int t) { return t == QK_TYPE_F32 || t == QK_TYPE_F16 || t == QK_TYPE_BF16; }

} // namespace

extern "C" int qk_cuda_kernel_supports(int op, int type) {
    const codec c = codec_of(type);
    return op == 0 ? c.quant != nullptr : op == 1 ? c.dequant != nullptr : 0;
}

extern "C" int qk_cuda_quantize(int type, int src_type, const void *src, void *dst, int64_t rows, int64_t cols,
                                const float *imatrix, int64_t rows_per_imatrix, void *stream) {
    const codec c = codec_of(type);
    if (!c.quant) return (int)cudaErrorNotSupported;
    if (!plain_type(src_type) || rows < 0 || cols <= 0 || (imatrix && rows_per_imatrix < 1))
        return (int)cudaErrorInvalidValue;
    const qk_cuda_qargs a = {src_type, src, dst, rows, cols, imatrix, imatrix ? rows_per_imatrix : 1};
    return c.quant(&a, static_cast<cudaStream_t>(stream));
}

extern "C" int qk_cuda_dequantize(int type, int dst_type, const void *src, void *dst, int64_t rows, int64_t cols,
                                  void *stream) {
    const codec c = codec_of(type);
    if (!c.dequant) return (int)cudaErrorNotSupported;
    if (!plain_type(dst_type) || rows < 0 || cols <= 0) return (int)cudaErrorInvalidValue;
    const qk_cuda_dargs a = {dst_type, src, dst, rows, cols};
    return c.dequant(&a, static_cast<cudaStream_t>(stream));
}

extern "C" int qk_cuda_quant_error(int type, int src_type, const void *src, const void *q, int64_t rows, int64_t cols,
                                   const float *weights, const float *means, int64_t rows_per_weights, double *scratch,
                                   double *sums, void *stream) {
    const codec c = codec_of(type);
    if (!c.error) return (int)cudaErrorNotSupported;
    if (!plain_type(src_type) || rows < 1 || cols <= 0 || (weights && rows_per_weights < 1) || (means && !weights) ||
        !scratch || !sums)
        return (int)cudaErrorInvalidValue;
    const qk_cuda_eargs a = {src_type, src, q, rows, cols, weights, means, weights ? rows_per_weights : 1,
                             scratch,  sums};
    return c.error(&a, static_cast<cudaStream_t>(stream));
}

extern "C" int qk_cuda_moe_supports(int type) { return codec_of(type).moe != nullptr; }

extern "C" int qk_cuda_moe(const qk_cuda_moe_args *a, const qk_cuda_moe_plan *p, void *stream) {
    const codec c = codec_of(a->type);
    if (!c.moe) return (int)cudaErrorNotSupported;
    if (!plain_type(a->x_type) || a->m < 1 || a->k < 1 || a->n_tokens < 1 || a->n_used < 1 || a->n_expert < 1 || !p)
        return (int)cudaErrorInvalidValue;
    if (p->bytes && !a->workspace) return (int)cudaErrorInvalidValue;
    return c.moe(a, p, static_cast<cudaStream_t>(stream));
}

/* The tables are __device__ arrays initialised at module load (qk_tables_cuda.cuh); the I-quant
 * encoders' lattice maps are built on the host and copied to the current device; the MoE tiled
 * kernels are allowed their shared memory. */
extern "C" int qk_cuda_kernels_init(void) {
    int err = qk_cuda_iq_grids_upload();
    for (int t = 0; t < QK_TYPE_ID_LIMIT && !err; t++)
        if (codec_of(t).moe_init) err = codec_of(t).moe_init();
    return err;
}
