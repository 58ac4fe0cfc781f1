/* The MoE matmul as the kernels see it: the arguments and the plan (which path, which tile, the
 * scratch laid out in the caller's workspace) of cuda_kernels.h, the launchers per type, and the
 * type-independent steps (moe_route.cu). Internal to kernels/cuda; the runtime calls
 * cuda_kernels.h. */
#ifndef QK_MOE_LAUNCH_H
#define QK_MOE_LAUNCH_H

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include "cuda_kernels.h"
#include "qkern_formats.h"

/* The grouping of slots by expert (moe_route.cu), read by the tiled kernel. */
typedef struct moe_route {
    const int4 *tiles;  /* expert, first index into sorted, slot count (<= bn) */
    const int *n_tiles; /* how many of tiles are valid */
    const int *sorted;  /* slot indices, grouped by expert */
    const __half *xh;   /* the activations in f16, [rows of x][k] */
} moe_route;

/* The tiled path's first steps on stream s: group the slots by expert and cut the groups into
 * tiles, set the slots of out-of-range ids to NaN, convert the activations to f16. *out is
 * where the tiled kernel writes: y, or the per-slot scratch of the weighted sum. */
int qk_cuda_moe_prepare(const qk_cuda_moe_args *a, const qk_cuda_moe_plan *p, moe_route *r, float **out,
                        cudaStream_t s);

/* y[t] = sum over s in order of router[t][s] * partial[t][s]. */
int qk_cuda_moe_weighted_sum(const qk_cuda_moe_args *a, const float *partial, cudaStream_t s);

typedef int (*qk_cuda_moe_launcher)(const qk_cuda_moe_args *a, const qk_cuda_moe_plan *p, cudaStream_t s);

typedef int (*qk_cuda_moe_init)(void);

/* Every row of the format table with a cuda column of Y has both (its family's .cu file
 * defines them with QK_CUDA_MOE). */
#define QK_CUDA_DECLARE_MOE(NAME, codec, id, elems, bytes, family, source, imatrix, cpu, cuda, ...)                    \
    QK_IF_##cuda(int qk_cuda_moe_##codec(const qk_cuda_moe_args *a, const qk_cuda_moe_plan *p, cudaStream_t s);        \
                 int qk_cuda_moe_init_##codec(void);)
QK_FORMATS(QK_CUDA_DECLARE_MOE)
#undef QK_CUDA_DECLARE_MOE

#endif
