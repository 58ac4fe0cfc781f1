/* The I-quants on the GPU: the encoders of kernels/cpu/iquants_{grid,iq1,iq4}_block.h and the
 * decoders of iquants_block.h, with and without imatrix (every statistic is per super-block,
 * so no row pass).
 *
 * The grid encoders read the lattice maps of kernels/cpu/iq_grid.c. qk_cuda_iq_grids_upload
 * builds them on the host (the CPU builder itself) and copies each to the current device; the
 * kernels reach the device copies through qk_iq_grid structs in constant memory. */
#include <pthread.h>

#include "codec_kernels.cuh"
#include "decode_traits.cuh"
#include "iq_grid.h"
#include "iquants_block.h"
#include "iquants_grid_block.h"
#include "iquants_iq1_block.h"
#include "iquants_iq4_block.h"

/* Per device (a __constant__ variable has one instance per device): the grid structs, their
 * pointers into that device's memory. */
__constant__ qk_iq_grid qk_iq_grids_dev[QK_IQ_GRID_COUNT];

/* Block code on lattice map GRID: the traits pass this device's copy of it. */
#define IQ_GRID_TRAITS(T, GRID)                                                                                        \
    struct T##_traits : qk_cuda::traits_defaults, qk_cuda::T##_dec {                                                   \
        __device__ static void quant(const float *x, const float *qw, float, uint8_t *b) {                             \
            const qk_iq_grid g = qk_iq_grids_dev[GRID];                                                                \
            qk_quant_block_##T(&g, x, qw, b);                                                                          \
        }                                                                                                              \
    };

namespace {
IQ_GRID_TRAITS(iq2_xxs, QK_IQ_GRID_2BIT_256)
IQ_GRID_TRAITS(iq2_xs, QK_IQ_GRID_2BIT_512)
IQ_GRID_TRAITS(iq2_s, QK_IQ_GRID_2BIT_1024)
IQ_GRID_TRAITS(iq3_xxs, QK_IQ_GRID_3BIT_256)
IQ_GRID_TRAITS(iq3_s, QK_IQ_GRID_3BIT_512)
IQ_GRID_TRAITS(iq1_s, QK_IQ_GRID_1BIT_2048)
IQ_GRID_TRAITS(iq1_m, QK_IQ_GRID_1BIT_2048)
/* The IQ4 types read no grid. */
struct iq4_nl_traits : qk_cuda::traits_defaults, qk_cuda::iq4_nl_dec {
    __device__ static void quant(const float *x, const float *qw, float, uint8_t *b) {
        qk_quant_block_iq4_nl(x, qw, b);
    }
};
struct iq4_xs_traits : qk_cuda::traits_defaults, qk_cuda::iq4_xs_dec {
    __device__ static void quant(const float *x, const float *qw, float, uint8_t *b) {
        qk_quant_block_iq4_xs(x, qw, b);
    }
};
} // namespace

QK_CUDA_CODEC(iq2_xxs, iq2_xxs_traits)
QK_CUDA_CODEC(iq2_xs, iq2_xs_traits)
QK_CUDA_CODEC(iq2_s, iq2_s_traits)
QK_CUDA_CODEC(iq3_xxs, iq3_xxs_traits)
QK_CUDA_CODEC(iq3_s, iq3_s_traits)
QK_CUDA_CODEC(iq1_s, iq1_s_traits)
QK_CUDA_CODEC(iq1_m, iq1_m_traits)
QK_CUDA_CODEC(iq4_nl, iq4_nl_traits)
QK_CUDA_CODEC(iq4_xs, iq4_xs_traits)

/* ---- the lattice maps on the devices ---------------------------------------------------- */

namespace {

constexpr int MAX_DEVICES = 256;
pthread_mutex_t upload_lock = PTHREAD_MUTEX_INITIALIZER;
bool uploaded[MAX_DEVICES]; /* the maps stay on a device for the life of the process */

/* One array to the device; *dst stays NULL on failure. */
template <class E> cudaError_t copy_array(const E *src, size_t n, const E **dst) {
    E *p = nullptr;
    cudaError_t err = cudaMalloc((void **)&p, n * sizeof(E));
    if (err == cudaSuccess) err = cudaMemcpy(p, src, n * sizeof(E), cudaMemcpyHostToDevice);
    if (err != cudaSuccess) {
        cudaFree(p);
        return err;
    }
    *dst = p;
    return cudaSuccess;
}

void free_grid(qk_iq_grid *g) {
    cudaFree((void *)g->codes);
    cudaFree((void *)g->map);
    cudaFree((void *)g->neighbours);
}

cudaError_t upload_grids(void) {
    qk_iq_grid dev[QK_IQ_GRID_COUNT] = {};
    cudaError_t err = cudaSuccess;
    for (int id = 0; id < QK_IQ_GRID_COUNT && err == cudaSuccess; id++) {
        const qk_iq_grid *h = qk_iq_grid_get((qk_iq_grid_id)id);
        if (!h) {
            err = cudaErrorMemoryAllocation;
            break;
        }
        dev[id] = *h;
        dev[id].codes = nullptr;
        dev[id].map = nullptr;
        dev[id].neighbours = nullptr;
        err = copy_array(h->codes, (size_t)h->ngrid, &dev[id].codes);
        if (err == cudaSuccess) err = copy_array(h->map, (size_t)h->map_size, &dev[id].map);
        if (err == cudaSuccess) err = copy_array(h->neighbours, h->neighbours_len, &dev[id].neighbours);
    }
    if (err == cudaSuccess) err = cudaMemcpyToSymbol(qk_iq_grids_dev, dev, sizeof dev);
    /* the copies ran on the legacy stream, which the contexts' non-blocking streams do not
     * wait for: finish them before any kernel can read the maps */
    if (err == cudaSuccess) err = cudaDeviceSynchronize();
    if (err != cudaSuccess)
        for (int id = 0; id < QK_IQ_GRID_COUNT; id++) free_grid(&dev[id]);
    return err;
}

} // namespace

int qk_cuda_iq_grids_upload(void) {
    int device = 0;
    cudaError_t err = cudaGetDevice(&device);
    if (err != cudaSuccess) return (int)err;
    if (device < 0 || device >= MAX_DEVICES) return (int)cudaErrorInvalidDevice;
    pthread_mutex_lock(&upload_lock);
    if (!uploaded[device]) {
        err = upload_grids();
        uploaded[device] = err == cudaSuccess;
    }
    pthread_mutex_unlock(&upload_lock);
    return (int)err;
}
