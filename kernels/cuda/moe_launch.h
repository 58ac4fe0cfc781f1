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

/* The dot path's first step: the activations quantized to 8 bits into the workspace (plan's xq,
 * xm), 32 values at a time: scale d = max |x| / 127, codes round(x / d), and d times the sum of
 * each half's 16 codes (for the formats whose weights carry an offset). */
int qk_cuda_moe_quantize_x(const qk_cuda_moe_args *a, const qk_cuda_moe_plan *p, cudaStream_t s);

/* y[t] = sum over s in order of router[t][s] * partial[t][s]. */
int qk_cuda_moe_weighted_sum(const qk_cuda_moe_args *a, const float *partial, cudaStream_t s);

namespace qk_cuda {

__device__ inline void prefetch_l2(const void *p) { asm volatile("prefetch.global.L2 [%0];" ::"l"(p)); }

/* Programmatic dependent launch (sm_90): the kernel launched after this one, with the attribute
 * cudaLaunchAttributeProgrammaticStreamSerialization, may start before this one ends; it waits
 * for this one's results in wait_for_prerequisite_grid. */
__device__ inline void allow_dependent_launch() {
#if __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
__device__ inline void wait_for_prerequisite_grid() {
#if __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

} // namespace qk_cuda

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
